#!/usr/bin/perl
# nginx reload (SIGHUP) and graceful stop (SIGQUIT) with the module: old
# workers finish their parked requests and exit promptly (their long-lived
# Redis timers must not keep them alive), new workers reconnect.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 2; }
CONF
ok(start_jobs_nginx(), 'stack ready');

for my $round (1 .. 2) {
    my @old = nginx_worker_pids();

    # a parked job across the reload
    my $s = send_post('/jobs/sleep', '{"ms":700}');
    ok(wait_until(sub { pending_jobs('sleep') == 1 }, 5, 'sleep job running'),
        "round $round: a job is parked");

    my $t0 = time;
    kill 'HUP', nginx_pid();

    my $resp = '';
    local $SIG{ALRM} = sub { die "no answer\n" };
    alarm 10;
    eval { 1 while sysread($s, $resp, 65536, length $resp); alarm 0 };
    alarm 0;
    close $s;
    like($resp, qr{^HTTP/1\.1 200}, "round $round: the parked job was "
        . 'answered by its old worker');

    ok(wait_until(sub {
        my @now = nginx_worker_pids();
        my %old = map { $_ => 1 } @old;
        @now == 2 && !grep { $old{$_} } @now;
    }, 10, 'old workers replaced'), "round $round: old workers exited");
    diag(sprintf 'round %d: old workers gone %.2f s after SIGHUP', $round,
        time - $t0);
    ok(time - $t0 < 3, "round $round: promptly (no lingering timers)");

    ok(wait_nginx_ready('/jobs/echo', '{}'), "round $round: new workers "
        . 'serve jobs');
}

my $t0 = time;
is(stop_nginx('QUIT'), 0, 'nginx exits 0 on SIGQUIT');
my $dt = time - $t0;
ok($dt < 5, sprintf('graceful stop within %.2f s', $dt));

finish();
