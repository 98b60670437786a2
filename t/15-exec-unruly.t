#!/usr/bin/perl
# handler exec: programs that misbehave outside a job's answer.  A
# process that floods its stderr neither stops its worker's loop (jobs
# are answered, SIGTERM stops the sidecar at once) nor fills the log
# (lines are rate-limited, the dropped ones counted).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $py = '/usr/bin/python3';
my $reverse = "$py $root/sdk/python/examples/reverse.py";

start_redis();
my $t0 = time;
start_sidecar(conf => <<"CONF");
shutdown_timeout 30s;
queue flood { handler exec; workers 1;
              command "/bin/sh -c '(yes spam >&2 &); exec $reverse'"; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');

my $log = tmpdir() . '/sidecar.log';

# ---- a process that floods its stderr
my $r = post_json('/jobs/flood', { text => 'abc' }, scaled(10));
is($r->{status}, 200, 'a job on a worker whose process floods its stderr '
    . 'is answered') or diag($r->{content});
is_deeply($r->{json}, { text => 'cba' }, 'as it should be');
ok(wait_until(sub { slurp($log) =~ /lines of stderr not logged/ },
    scaled(5), 'dropped lines counted'), 'the lines not logged are counted');
my $spams = () = slurp($log) =~ /: spam$/mg;
my $most = 5000 + 100 * (time - $t0) + 100;
cmp_ok($spams, '<=', $most, "$spams lines of spam logged: a burst of 5000, "
    . 'then 100 a second');

my $t = time;
my $status = stop_sidecar(scaled(40));
my $took = time - $t;
is($status, 0, 'the sidecar exits 0 on SIGTERM');
cmp_ok($took, '<', scaled(5), sprintf('within %.1f s, not the 30 s of '
    . 'shutdown_timeout', $took));

finish();
