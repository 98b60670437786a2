#!/usr/bin/perl
# The +switch-master subscription's liveness.  The sentinel an nginx worker
# (then the sidecar's supervisor) is subscribed to is frozen (SIGSTOP: it
# keeps its connections open and answers nothing); the subscriber PINGs it
# every second, gives up on it after its deadline and subscribes on another
# sentinel.  A SENTINEL FAILOVER then is heard there (or found by asking
# again once subscribed anew), and jobs flow on the new master within
# 10 s.  Which sentinel a process watches is found from the sentinels'
# CLIENT LIST (psub=1) and the process's sockets (ss).  The times are
# printed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use SentinelTopology;

plan skip_all => 'needs ss (iproute2)' unless -x '/usr/bin/ss'
    || -x '/bin/ss';

my $topo = start_sentinel_topology(name => 'watched');
redis_use($topo->master_port);
my $sentinels = 'sentinel://' . $topo->url;
start_sidecar(redis => $sentinels,
    conf => "redis_timeout 1s;\nqueue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(redis => $sentinels, workers => 1), 'stack ready');

my %frozen;

# The sentinels (not frozen) on which process $pid has a connection
# subscribed to a pattern.
sub watched_by {
    my ($pid) = @_;
    return grep {
        !$frozen{$_} && grep { $_->{psub} } $topo->clients_of($_, $pid)
    } $topo->sentinel_ports;
}

# Freezes the sentinel process $pid watches, waits until $pid watches
# another one (the seconds that took), fails the master over through a
# live sentinel, and returns the seconds until jobs flow on the new
# master, or undef.
sub freeze_and_fail_over {
    my ($who, $pid, $log, $gave_up) = @_;
    my $w;
    ok(wait_until(sub { ($w) = watched_by($pid); $w }, scaled(10),
        "$who subscribed"), "$who is subscribed on sentinel " . ($w // '-'));
    return undef unless $w;
    my $t0 = time;
    $topo->signal_sentinel($w, 'STOP');
    $frozen{$w} = 1;
    my $other;
    ok(wait_until(sub { ($other) = watched_by($pid); $other }, scaled(10),
        "$who subscribed elsewhere"), "$who subscribes on another sentinel "
        . 'once its own is frozen');
    my $moved = time - $t0;
    like(slurp($log), $gave_up, "$who: the log says it gave the frozen "
        . 'sentinel up');
    # one not frozen, nor in TILT mode (as one thawed less than 30 s ago
    # is) if there is one
    my @live = grep { !$frozen{$_} } $topo->sentinel_ports;
    my ($live) = ((grep { !$topo->in_tilt($_) } @live), @live);
    my $old = $topo->sentinel_master($live);
    $t0 = time;
    my $r = $topo->sentinel_cmd($live, 'SENTINEL', 'FAILOVER', 'watched');
    is($r, 'OK', "SENTINEL FAILOVER through $live") or diag(explain $r);
    my $new;
    ok(wait_until(sub {
        $new = $topo->sentinel_master($live);
        $new && $new != $old;
    }, scaled(20), 'sentinels elect'), "master $old -> " . ($new // '-'));
    my $elected = time - $t0;
    my $flowing;
    ok(wait_until(sub {
        redis_use($new);
        my $r = post_json('/jobs/echo', { who => $who }, 3);
        $flowing = time - $t0 if $r->{status} == 200;
        $flowing;
    }, 10, 'jobs flow'), "$who, its sentinel frozen: jobs flow on the new "
        . 'master within 10 s of SENTINEL FAILOVER');
    diag(sprintf '%s: subscribed elsewhere %.2f s after SIGSTOP of its '
        . 'sentinel; after SENTINEL FAILOVER: elected %.2f s, jobs again '
        . '%s s', $who, $moved, $elected,
        defined $flowing ? sprintf('%.2f', $flowing) : 'never');
    $topo->signal_sentinel($w, 'CONT');
    delete $frozen{$w};
    ok($topo->wait_ready(scaled(30)), 'the old master is a replica again');
    return ($flowing, $new);
}

my ($worker) = nginx_worker_pids();
my ($took, $new) = freeze_and_fail_over('nginx', $worker, nginx_error_log(),
    qr/sentinel watch connection: no reply in time, dropping it/);
like(slurp(nginx_error_log()),
    qr/failover:\ watched\ 127\.0\.0\.1\ \d+\ 127\.0\.0\.1\ $new
       |moved\ from\ .*\ to\ 127\.0\.0\.1:$new\ unheard/x,
    'nginx heard of the failover from the sentinel it watches now');

my $log = tmpdir() . '/sidecar.log';
($took, $new) = freeze_and_fail_over('sidecar', sidecar_pid(), $log,
    qr/did not answer in 1000 ms, watching the next one/);
like(slurp($log), qr/moved to 127\.0\.0\.1:$new|is at 127\.0\.0\.1:$new now/,
    'the sidecar heard of the failover from the sentinel it watches now');

finish();
