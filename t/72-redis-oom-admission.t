#!/usr/bin/perl
# Redis refuses writes for a while (maxmemory under noeviction): nginx's
# jobs are refused 503 redis_unavailable, "redis refused the job", however
# long it lasts.  The sidecar's heartbeat is refused too, so its node's
# document expires (5 s): nginx does not take that for a queue nobody
# serves while its own Redis refuses it.  (Before: from about 5 s on,
# every job was 503 no_workers, pointing at the workers, and nginx logged
# nothing, since no job reached Redis; found by a failure drill.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis(args => [ '--maxmemory-policy', 'noeviction' ]);
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(), 'stack ready');

sub code_of { my ($r) = @_; ref $r->{json} eq 'HASH'
    && ref $r->{json}{error} eq 'HASH' ? $r->{json}{error}{code} : '' }

redis_cmd('CONFIG', 'SET', 'maxmemory', '1');
my $t0 = time;
my %answers;
# past the node document's life (three heartbeats, 5 s at least)
while (time - $t0 < 8) {
    my $r = post_json('/jobs/echo', { at => time - $t0 }, scaled(5));
    $answers{ $r->{status} . ' ' . code_of($r) }++;
    select undef, undef, undef, 0.05;
}
ok(!redis_cmd('EXISTS', 'offload:{ctl}:node:' . node_name()),
    'the node\'s document expired meanwhile');
is_deeply([ keys %answers ], [ '503 redis_unavailable' ],
    'every job of the 8 s refused: 503 redis_unavailable, none no_workers')
    or diag(explain(\%answers));
like(slurp(nginx_error_log()), qr/XADD to queue "echo" failed: OOM/,
    'nginx logs the refusals');

redis_cmd('CONFIG', 'SET', 'maxmemory', '0');
ok(wait_until(sub { post_json('/jobs/echo', {}, scaled(5))->{status} == 200 },
    scaled(10), 'answered again'), 'memory free: jobs answered again');

finish();
