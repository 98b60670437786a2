#!/usr/bin/perl
# Every stop of a worker has a deadline, not only the shutdown's: a worker
# still running shutdown_timeout after its SIGTERM (here in a job of a
# queue with `timeout off`) is killed (SIGKILL, logged) and its job goes
# back to the queue unchanged (a stop, not a failed attempt).
# - A reload's rolling restart goes on past it, so the reload ends and the
#   next SIGHUP is accepted instead of being refused with "the previous
#   reload is still rolling".
# - A failed pool's busy worker stops for its cooldown instead of running
#   on under a pool reported failed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
# sleep first: the rolling reaches echo only after sleep's worker is gone
start_sidecar(conf => <<'CONF');
shutdown_timeout 1s;
queue sleep { handler sleep; workers 1; timeout off; }
queue echo { handler echo; workers 1; }
queue burst {
    handler sleep; workers 2; timeout off;
    max_restarts 0 1m; restart_cooldown 1m;
}
CONF
ok(start_jobs_nginx(), 'stack ready');

my $log = tmpdir() . '/sidecar.log';
my $deadline = 1 + scaled(1.5);     # shutdown_timeout + margin

sub pending {
    my ($queue) = @_;
    my $g = redis_cmd('XINFO', 'GROUPS', "offload:{$queue}:jobs");
    return ref $g eq 'ARRAY' && @$g ? { @{ $g->[0] } }->{pending} : 0;
}

# ---- a failed pool: its busy worker is stopped, then killed
sub busy_slot {
    my $p = redis_cmd('XPENDING', 'offload:{burst}:jobs', 'workers');
    my $held = ref $p eq 'ARRAY' && ref $p->[3] eq 'ARRAY' ? $p->[3] : [];
    return @$held == 1 && $held->[0][0] =~ /:burst:(\d+)\z/ ? $1 : undef;
}
my $long = send_post('/jobs/burst', '{"ms":10000}');
my $busy;
ok(wait_until(sub { defined($busy = busy_slot()) }, 10, 'burst job running'),
    'a 10 s job runs in the burst pool');
my $pids = worker_pids()->{burst};
my ($busy_pid, $idle_pid) = ($pids->[$busy], $pids->[1 - $busy]);
kill 'KILL', $idle_pid;             # a crash, max_restarts 0: pool failed
ok(wait_until(sub { !kill 0, $busy_pid }, $deadline,
    'the failed pool\'s busy worker gone'),
    'the failed pool\'s busy worker is gone within shutdown_timeout + margin');
like(slurp($log), qr/pool burst failed/, 'the pool failed');
my $killed = "worker burst:$busy: pid $busy_pid still running 1s after "
    . 'SIGTERM, sending SIGKILL';
like(slurp($log), qr/\Q$killed\E/, 'its SIGKILL is logged');
ok(wait_until(sub { my $e = stream_entries('offload:{burst}:jobs');
    pending('burst') == 0 && @$e == 1 && $e->[0]{attempt} == 1 }, 5,
    'job back in the queue'),
    'its job is back in the queue, its attempt unchanged');
ok(!@{ stream_entries('offload:{burst}:dead') }, 'not dead-lettered');
close $long;
# the pool comes back at the reload below: not with this job
my $left = redis_cmd('XRANGE', 'offload:{burst}:jobs', '-', '+');
redis_cmd('XDEL', 'offload:{burst}:jobs', map { $_->[0] } @$left);

# ---- a reload: the retired worker in a long job is killed
my $job = send_post('/jobs/sleep', '{"ms":10000}');
ok(wait_until(sub { pending('sleep') == 1 }, 10, 'sleep job running'),
    'a 10 s job runs on a queue with timeout off');

my $before = worker_pids();
my ($old_sleep, $old_echo) = ($before->{sleep}[0], $before->{echo}[0]);

# ---- first SIGHUP: the sleep worker is retired while in its job
my $t0 = time;
kill 'HUP', sidecar_pid();
ok(wait_until(sub { !kill 0, $old_sleep }, $deadline,
    'the retired sleep worker gone'),
    'the retired worker is gone within shutdown_timeout + margin');
my $took = time - $t0;
ok($took >= 0.9, sprintf 'not before shutdown_timeout (%.2f s)', $took);
$killed = "worker sleep:0: pid $old_sleep still running 1s after SIGTERM, "
    . 'sending SIGKILL';
like(slurp($log), qr/\Q$killed\E/, 'the SIGKILL is logged');
ok(wait_until(sub { @{ events('reload') } == 1 },
    $t0 + $deadline + scaled(2) - time, 'first reload done'),
    'the rolling went on: reload done')
    or diag(slurp($log));
ok(!kill(0, $old_echo), 'the echo worker was rolled after it');

# ---- a second SIGHUP is accepted and rolls the same way
$t0 = time;
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload') } == 2 }, $deadline + scaled(2),
    'second reload done'), 'a second SIGHUP is accepted and done');
is(scalar @{ events('reload_failed') }, 0, 'no reload was refused');

# ---- the job was handed back, not failed: it runs to its end
my $answer = read_answer($job, scaled(20));
is($answer->{status}, 200, 'the killed job ran again and answered 200');
ok(!@{ stream_entries('offload:{sleep}:dead') }, 'nothing dead-lettered');
is(scalar(grep { ($_->{queue} // '') eq 'sleep' } @{ events('crash') }), 0,
    'no crash reported');

finish();
