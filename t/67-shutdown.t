#!/usr/bin/perl
# SIGTERM: the sidecar stops taking jobs, lets running ones finish, hands
# back what is left after shutdown_timeout (unchanged: a stop is not a
# failed attempt), leaves the registry and exits 0.  A sidecar started
# again runs every job that was left: none is lost.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

my $conf = <<'CONF';
shutdown_timeout 1s;
queue sleep { handler sleep; workers 2; }
queue slow  { handler sleep; workers 1; }
CONF

start_redis();
start_sidecar(conf => $conf);
ok(start_jobs_nginx(ready => [ '/jobs/sleep', '{"ms":0}' ]), 'stack ready');

sub group_info {
    my ($queue) = @_;
    my $g = redis_cmd('XINFO', 'GROUPS', "offload:{$queue}:jobs");
    return ref $g eq 'ARRAY' && @$g ? { @{ $g->[0] } } : {};
}

# ---- two jobs running, three waiting, then SIGTERM
my @running = map { send_post('/jobs/sleep', qq({"ms":800,"n":$_})) } 1 .. 2;
ok(wait_until(sub { (group_info('sleep')->{pending} // 0) == 2 }, 10,
    'two sleep jobs running'), 'two jobs running');
my @waiting = map { send_post('/jobs/sleep', qq({"ms":10,"w":$_})) } 1 .. 3;
ok(wait_until(sub { (redis_cmd('XLEN', 'offload:{sleep}:jobs') // 0) == 5 },
    10, 'three more queued'), 'three jobs queued behind them');

my $t0 = time;
my $status = stop_sidecar();
my $took = time - $t0;
ok(defined $status && POSIX::WIFEXITED($status)
    && POSIX::WEXITSTATUS($status) == 0, 'sidecar exited 0 on SIGTERM');
ok($took < 5, sprintf 'within the shutdown (%.2f s)', $took);
for my $s (@running) {
    my $a = read_answer($s, 5);
    is($a->{status}, 200, 'a running job finished: 200');
}
ok(!defined node_doc(), 'the node left the registry');
is(redis_cmd('SISMEMBER', 'offload:{ctl}:nodes', node_name()), 0,
    'and the node set');

# ---- a job longer than shutdown_timeout is handed back, not failed
start_sidecar(conf => $conf);
for my $s (@waiting) {
    is(read_answer($s, scaled(10))->{status}, 200,
        'a waiting job ran on the next sidecar');
}
# nginx knows the new node serves slow from its registry read, once a
# second or at a refusal: until then a job gets 503 no_workers
ok(wait_until(sub { post_json('/jobs/slow', '{"ms":0}')->{status} == 200 },
    scaled(10), 'nginx sees slow served'), 'nginx sees the queue served');
my $long = send_post('/jobs/slow', '{"ms":2500}');
ok(wait_until(sub { (group_info('slow')->{pending} // 0) == 1 }, 10,
    'slow job running'), 'a 2.5 s job is running');
$t0 = time;
$status = stop_sidecar();
$took = time - $t0;
ok(POSIX::WIFEXITED($status) && POSIX::WEXITSTATUS($status) == 0,
    'sidecar exited 0 after shutdown_timeout');
ok($took >= 0.9 && $took < 2.4, sprintf 'after shutdown_timeout 1s (%.2f s)',
    $took);
is(group_info('slow')->{pending}, 0, 'nothing left pending');
my $back = stream_entries('offload:{slow}:jobs');
is(scalar @$back, 1, 'the job is back in the queue');
is($back->[0] && $back->[0]{attempt}, 1, 'with its attempt unchanged');
ok(!@{ stream_entries('offload:{slow}:dead') }, 'not dead-lettered');

start_sidecar(conf => $conf);
my $a = read_answer($long, scaled(15));
is($a->{status}, 200, 'the handed-back job ran on the next sidecar: 200');

finish();
