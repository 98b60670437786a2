#!/usr/bin/perl
# A Redis whose maxmemory-policy evicts keys drops queued jobs, their
# records and results under memory pressure, an error to nobody (a probe
# saw 40 accepted async jobs all gone, the stream evicted).  The sidecar
# says so at warn when it connects to such a Redis, naming the policy,
# and runs all the same; under noeviction it says nothing.  (Before: not a
# word anywhere.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $port = start_redis(args => [ '--maxmemory', '100mb',
                                 '--maxmemory-policy', 'allkeys-lru' ]);
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
my $log = tmpdir() . '/sidecar.log';
my $warned = qr/\[warn\] \d+ registry 127\.0\.0\.1:$port: redis evicts keys \(maxmemory-policy allkeys-lru, maxmemory 104857600\): under memory pressure queued jobs, their records and results vanish without an error; set maxmemory-policy noeviction/;
ok(wait_until(sub { slurp($log) =~ $warned }, scaled(10), 'the warning'),
    'an evicting Redis: the sidecar warns') or diag(slurp($log));
ok(start_jobs_nginx(), 'and runs all the same: a job is answered');
stop_sidecar();

is(redis_cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), 'OK',
    'noeviction');
my $before = () = slurp($log) =~ /redis evicts keys/g;
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
is(post_json('/jobs/echo', '{"n":1}')->{status}, 200,
    'under noeviction: jobs run');
my $after = () = slurp($log) =~ /redis evicts keys/g;
is($after, $before, 'under noeviction: no warning');

finish();
