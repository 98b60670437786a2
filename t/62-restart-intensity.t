#!/usr/bin/perl
# OTP restart intensity: a crash storm past max_restarts marks the pool
# failed (registry, offloadctl, log), stops its workers for the cooldown
# while the other queues keep answering, then the pool comes back by
# itself.  Workers the supervisor stops itself are not crashes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep {
    handler sleep;
    workers 2;
    max_restarts 3 5s;
    restart_cooldown 2s;
    restart_backoff 10ms 20ms;
}
queue echo { handler echo; workers 2; max_restarts 0 1m; }
queue backoff {
    handler sleep; workers 1; max_restarts 100 1m; restart_backoff 1s 8s;
}
CONF
ok(start_jobs_nginx(), 'stack ready');

my $log = tmpdir() . '/sidecar.log';

sub pool { my $doc = node_doc() or return undef; $doc->{queues}{$_[0]} }

is(pool('sleep')->{state}, 'ok', 'sleep pool starts ok');
is(pool('sleep')->{restarts}, 0, 'with no restarts');
is(pool('echo')->{state}, 'ok', 'echo pool ok');

# ---- crash storm: kill a sleep worker, wait for its successor, again...
my (@killed, $failed_at);
for my $round (0 .. 9) {
    my $slot = $round % 2;
    my $pid = worker_pids()->{sleep}[$slot];
    last unless $pid;
    kill 'KILL', $pid;
    push @killed, $pid;
    my $state = wait_until(sub {
        my $q = pool('sleep') or return 0;
        return 'failed' if $q->{state} eq 'failed';
        my $new = $q->{workers}[$slot]{pid};
        return $new && $new != $pid ? 'restarted' : 0;
    }, 10, "sleep slot $slot restarted or pool failed");
    last unless $state;
    if ($state eq 'failed') {
        $failed_at = time;
        last;
    }
}
ok($failed_at, 'the sleep pool is reported failed') or diag(slurp($log));
is(scalar @killed, 4, 'after the 4th crash (max_restarts 3)');
is(pool('sleep')->{restarts}, 3, 'registry counts 3 restarts');
is(pool('echo')->{state}, 'ok', 'the echo pool is still ok');
like(slurp($log), qr/pool sleep failed: 4 restarts in 5s \(the last: signal: killed by SIGKILL\), cooling down 2s/,
    'the failure is logged');

# ---- during the cooldown: no sleep worker, echo keeps answering
ok(wait_until(sub {
    my $q = pool('sleep') or return 0;
    !grep { defined $_->{pid} } @{ $q->{workers} };
}, 5, 'sleep slots empty'), 'no sleep worker registered while failed');
is(pool('sleep')->{state}, 'failed', 'still failed');
my @sleepers = grep { /\S/ } split /\s+/,
    `ps --ppid ${\ sidecar_pid()} -o pid= 2>/dev/null`;
my %others = map { ($_ => 1) } map { @{ worker_pids()->{$_} } }
    qw(echo backoff);
is(scalar(grep { !$others{$_} } @sleepers), 0,
    'no sleep worker process alive during the cooldown');

my $ok = 0;
for my $i (1 .. 20) {
    my $r = post_json('/jobs/echo', { i => $i });
    $ok++ if $r->{status} == 200 && $r->{json}{i} == $i;
}
is($ok, 20, 'echo jobs answer 200 while sleep is failed');

my $ctl = build_path('offloadctl');
my $out = `$ctl -c ${\ sidecar_conf_file()} status 2>&1`;
like($out, qr/STATE/, 'offloadctl status has a state column');
like($out, qr/^\s+sleep\s+sleep\s+failed\s+3\b/m,
    'offloadctl status shows sleep failed');
like($out, qr/^\s+echo\s+echo\s+ok\s+0\b/m, 'and echo ok');

# ---- after the cooldown the pool is back with live workers
ok(wait_until(sub {
    my $q = pool('sleep') or return 0;
    $q->{state} eq 'ok' && 2 == grep { $_->{pid} && kill 0, $_->{pid} }
        @{ $q->{workers} };
}, 10, 'sleep pool ok again'), 'the sleep pool comes back after the cooldown');
my $down = time - $failed_at;
ok($down >= 1.0, sprintf('it stayed failed for the cooldown (%.2f s seen)',
    $down));
like(slurp($log), qr/pool sleep restarting after cooldown/,
    'the restart is logged');
my ($pool_failed) = @{ events('pool_failed') };
is($pool_failed && $pool_failed->{queue}, 'sleep', 'event pool_failed');
is($pool_failed && $pool_failed->{report}{cooldown_ms}, 2000,
    'with its cooldown');
is(scalar @{ events('pool_restarted') }, 1, 'event pool_restarted');
is(scalar(grep { $_->{queue} eq 'sleep' } @{ events('crash') }), 4,
    'four crash events, one per kill');
is(pool('sleep')->{restarts}, 3,
    'neither the stopped workers nor the cooldown restart count as crashes');
# nginx sees the pool back at its next registry read (each second): till
# then its jobs are 503 no_workers (t/62-pool-failed-503.t)
my $r;
ok(wait_until(sub { ($r = post_json('/jobs/sleep', { ms => 10 }))->{status}
        != 503 }, scaled(5), 'nginx sees the pool back'),
    'nginx takes its jobs again');
is($r->{status}, 200, 'a sleep job answers 200');

# ---- one more crash is restarted normally: the window starts afresh
my $pid = worker_pids()->{sleep}[0];
kill 'KILL', $pid;
ok(wait_until(sub {
    my $q = pool('sleep') or return 0;
    my $new = $q->{workers}[0]{pid};
    $q->{state} eq 'ok' && $new && $new != $pid;
}, 10, 'slot 0 restarted'), 'a crash after the cooldown is just restarted');
is(pool('sleep')->{restarts}, 4, 'and counted');

# ---- the backoff doubles over a crash loop and is back at its minimum
# once a worker completed a job (restart events carry the delay)
sub kill_backoff_worker {
    my $pid = worker_pids()->{backoff}[0];
    kill 'KILL', $pid;
    ok(wait_until(sub {
        my $new = worker_pids()->{backoff}[0];
        $new && $new != $pid;
    }, scaled(15), 'backoff slot restarted'), 'backoff worker restarted');
    my @restarts = grep { $_->{queue} eq 'backoff' } @{ events('restart') };
    return $restarts[-1]{report}{delay_ms};
}
is(kill_backoff_worker(), 1000, 'first crash: the minimum, 1 s');
my $second = kill_backoff_worker();
ok($second >= 1500 && $second <= 2000, "second crash: doubled ($second ms)");
is(post_json('/jobs/backoff', { ms => 1 })->{status}, 200,
    'the next worker completes a job');
is(kill_backoff_worker(), 1000, 'a crash after a completed job: back to 1 s');

# ---- a SIGTERM shutdown is not a crash: echo (max_restarts 0) would fail
# at its first counted exit
is(stop_sidecar(), 0, 'sidecar exits 0 on SIGTERM');
my @failures = slurp($log) =~ /pool (\S+) failed/g;
is_deeply(\@failures, ['sleep'], 'the shutdown failed no pool');

finish();
