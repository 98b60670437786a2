#!/usr/bin/perl
# The whole stack on Redis Sentinel at once: nginx (offload_redis
# sentinel://) and the sidecar (redis sentinel://) both find the master
# through three real sentinels; 4 connections post sync echo jobs and 4
# async ones (paced) while the master fails: SIGKILL, or SENTINEL
# FAILOVER (the old master lives on, writable until demoted).  Then: jobs
# flow again within 5 s of the new master being able to take them (the
# time is printed apart from the sentinels' own election), every sync
# request got its own body back or a clear 503/504 JSON error, never
# another body, and every async job answered 202 reads a terminal state
# at GET /status/<id> (long polls), a done one with its own input.
#
# With wait_replicas=1 on both sides no accepted job may be lost across
# a SIGKILL (two replicas: the new master keeps one for WAIT), nor with
# wait_replicas=all across SENTINEL FAILOVER with two replicas.  Without
# wait_replicas the jobs lost are counted and printed, not asserted: the
# window WAIT closes.  OFFLOAD_E2E_RUNS (default 1) repeats the cases;
# OFFLOAD_E2E_ALL=1 adds the SENTINEL FAILOVER cases with WAIT 1 (below).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use OffloadTest;
use SentinelTopology;

my $RUNS = $ENV{OFFLOAD_E2E_RUNS} // 1;
my %TERMINAL = map { $_ => 1 } qw(done failed dead expired cancelled);
my $QUEUES = "queue echo { handler echo; workers 2; }\n";

# A child that keeps 4 connections posting to $path in bounded rounds
# until $until, then writes what each request got to a file; returns
# (pid, file).
sub start_loader {
    my ($path, $until) = @_;
    my $file = tmpdir() . '/load' . ($path =~ tr{/}{_}r) . "-$$-"
        . int(time * 1000) . '.json';
    my $pid = fork // die "fork: $!";
    return ($pid, $file) if $pid;
    my ($round, $next, @all) = (0, 0);
    my $async = $path =~ /async/;
    while (time < $until) {
        # async submits are answered at once: at most 10 rounds a second,
        # or their backlog in the shared echo queue holds up the sync jobs
        # and the 202s to read afterwards run into the tens of thousands
        if ($async) {
            sleep($next - time) if $next > time;
            $next = time + 0.1;
        }
        $round++;
        push @all, map { {
            path => $path, status => $_->{status}, at => $_->{at},
            body => $_->{body}, content => $_->{content},
            error => $_->{error} } }
            concurrent_posts(4, $async ? 5 : 10, sub { json_encode({
                p => $path, r => $round, c => $_[0], j => $_[1] }) },
                path => $path, timeout => scaled(15));
    }
    spew($file, json_encode(\@all));
    POSIX::_exit(0);
}

# Sorts the sync answers: correct (its own body back), a clear error
# (503/504 with a JSON error code), anything else is wrong.  An answer
# text is decoded once: the thousands of 503s while the master is away
# are the same few.
sub judge_sync {
    my ($res) = @_;
    my %n = (correct => 0, wrong => 0);
    my (@wrong, %decoded);
    for my $r (@$res) {
        my $content = $r->{content} // '';
        my $json = $decoded{$content} //= json_decode($content);
        if ($r->{status} == 200 && ref $json eq 'HASH'
            && json_encode($json) eq json_encode(json_decode($r->{body})))
        {
            $n{correct}++;
        } elsif (($r->{status} == 503 || $r->{status} == 504)
            && ref $json eq 'HASH' && $json->{error}{code})
        {
            $n{"$r->{status} $json->{error}{code}"}++;
        } else {
            $n{wrong}++;
            push @wrong, "$r->{status} " . ($r->{error}
                // substr($r->{content} // '', 0, 80));
        }
    }
    return (\%n, \@wrong);
}

# Reads every async job answered 202 at GET /status/<id>, first at once,
# then the ones not ended yet with long polls, until each has ended, is
# unknown (404: its record is not on the new master, and nothing writes it
# again) or $timeout s passed.  Returns (accepted, { status => count },
# [lost ids]) where lost is a job unknown or not ended by then, or done
# with another job's result.
sub judge_async {
    my ($res, $timeout) = @_;
    my %input;
    for my $r (grep { $_->{status} == 202 } @$res) {
        my $id = eval { json_decode($r->{content})->{id} } or next;
        $input{$id} = json_decode($r->{body});
    }
    my $ua = HTTP::Tiny->new(timeout => scaled(30), keep_alive => 1);
    my $port = nginx_port();
    my (%state, %record);
    my $deadline = time + $timeout;
    my $wait = 0;
    my $open = sub { my $s = $state{ $_[0] } // '';
        !$TERMINAL{$s} && $s ne 'http 404' };
    while (1) {
        for my $id (grep { $open->($_) } keys %input) {
            my $r = $ua->get("http://127.0.0.1:$port/status/$id?wait=$wait");
            my $json = json_decode($r->{content} // '');
            $state{$id} = $r->{status} == 200 && ref $json eq 'HASH'
                ? $json->{status} : "http $r->{status}";
            $record{$id} = $json;
        }
        last if time >= $deadline || !grep { $open->($_) } keys %input;
        $wait = 2;
    }
    my (%n, @lost);
    for my $id (keys %input) {
        my $s = $state{$id};
        if ($s eq 'done' && json_encode($record{$id}{result} // '')
            ne json_encode($input{$id}))
        {
            $s = 'done with a wrong result';
        }
        $n{$s}++;
        push @lost, "$id ($s)" unless $TERMINAL{$s}
            && $s ne 'done with a wrong result';
    }
    return (scalar keys %input, \%n, \@lost);
}

sub counts { my ($n) = @_; join ', ', map { "$_ x$n->{$_}" } sort keys %$n }

# One run: a fresh topology, sidecar and nginx, the load, the fault
# (KILL: SIGKILL of the master; FAILOVER: SENTINEL FAILOVER, the old
# master stays up and writable until the sentinels demote it), the checks.
# Returns the recovery time, the accepted async jobs lost and accepted.
sub run {
    my ($label, $wait, $fault, $replicas) = @_;
    my $opt = $wait ? " wait_replicas=$wait" : '';
    # the replicas WAIT needs: all is every one the sentinels see up
    my $need = $wait eq 'all' ? $replicas : $wait;
    my $topo = start_sentinel_topology(name => 'e2e',
        replicas => $replicas);
    my $url = 'sentinel://' . $topo->url;
    # the topology is ready with one replica up; a failover before the
    # others are in sync and counted (nginx WAITs for the replicas the
    # sentinels list up) may promote one that lacks jobs WAIT did not wait
    # for; and Redis sends a replica nothing after its full sync until its
    # first ack (up to a second): wait_replicated
    ok($topo->wait_replicas_up($replicas, scaled(20))
        && wait_replicated($topo->master_port, $replicas, scaled(10)),
        "$label: the sentinels see $replicas replica"
        . ($replicas > 1 ? 's' : '') . ' up and in sync');
    redis_use($topo->master_port);
    start_sidecar(redis => "$url$opt",
        conf => "redis_timeout 1s;\n$QUEUES");
    ok(start_jobs_nginx(redis => $url . ($wait ? "$opt wait_timeout=1s"
        : ''), http => 'offload_timeout 8s;', server => <<'SERVER'),
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /status/ { offload_jobs; }
SERVER
        "$label: nginx and the sidecar on $url$opt");

    # and every nginx worker has counted them
    ok(wait_until(sub {
        my $log = slurp(nginx_error_log());
        !grep { $log !~ /\b$_#\d+: .*wait_replicas=all: replicas up: $need,/ }
            nginx_worker_pids();
    }, scaled(10), 'the workers count the replicas'),
        "$label: every nginx worker counts $need replicas")
        if $wait eq 'all';

    my $until = time + scaled(4);
    my @loaders = map { [ start_loader($_, $until) ] }
        '/jobs/echo', '/async/echo';
    my $old = $topo->master_port;
    ok(wait_until(sub { my $k = eval { redis_cmd_at($old, 'KEYS',
        'offload:job:*') }; ref $k eq 'ARRAY' && @$k >= 30 }, scaled(10),
        'load running'), "$label: load on the master");
    my $t0 = time;
    my $new;
    if ($fault eq 'KILL') {
        $topo->kill_master('KILL');
        $new = $topo->wait_master_change($old, scaled(30));
    } else {
        (undef, $new) = $topo->failover(scaled(30));
    }
    my $elected = time - $t0;
    ok($new, "$label: the sentinels moved the master $old -> "
        . ($new // 'none'));

    # the time to recover: a sync job answered with its own body; with
    # wait_replicas, counted from when the new master also has the
    # replicas WAIT needs (the sentinels reconfigure a replica left or
    # the demoted master to follow it): before that every job is 503
    # not_replicated, as it should be
    my ($n, $recovered) = (0);
    my $ready = $wait ? undef : $elected;
    wait_until(sub {
        $ready //= time - $t0 if $topo->replica_ports >= $need;
        $n++;
        my $r = post_json('/jobs/echo', { probe => $n }, 3);
        return 0 unless $r->{status} == 200
            && ($r->{json}{probe} // 0) == $n;
        $recovered = time - $t0;
    }, scaled(30), 'a sync job answered after the failover');
    $ready //= $recovered;
    my $follow = defined $recovered ? $recovered - $ready : undef;
    ok(defined $follow && $follow <= 5, sprintf '%s: jobs flow again %s s '
        . 'after the new master could take them (sentinels agreed after '
        . '%.2f s, %s replica%s after %.2f s)', $label,
        defined $follow ? sprintf('%.2f', $follow) : 'never', $elected,
        $need, $need == 1 ? '' : 's', $ready // -1);

    ok(wait_until(sub { !grep { waitpid($_->[0], POSIX::WNOHANG()) == 0 }
        @loaders }, scaled(40), 'load done'), "$label: the load ended");
    my %res = map { ($_->[1] =~ /load_(jobs|async)/)[0]
        => json_decode(slurp($_->[1])) || [] } @loaders;

    my ($sync, $wrong) = judge_sync($res{jobs});
    is($sync->{wrong}, 0, "$label: every sync request got its own result "
        . 'or a 503/504 JSON error') or diag(join "\n", @$wrong[0 .. 9]);
    ok($sync->{correct} > 0, "$label: sync jobs answered");
    my ($accepted, $states, $lost) = judge_async($res{async}, scaled(20));
    my %async_n;
    for (@{ $res{async} }) {
        my $code = eval { json_decode($_->{content})->{error}{code} };
        $async_n{ join ' ', $_->{status}, $code // () }++;
    }
    # when the lost jobs were answered 202: the loss window
    my %answered = map { (eval { json_decode($_->{content})->{id} } // '')
        => $_->{at} - $t0 } grep { $_->{status} == 202 } @{ $res{async} };
    my @window = sort { $a <=> $b } map { $answered{ (split / /)[0] } }
        @$lost;
    diag(sprintf '%s: sentinels agreed after %.2f s, jobs again after %s '
        . 's; sync: %s; async answers: %s; accepted %d, their ends: %s; '
        . 'lost %d%s', $label, $elected,
        defined $recovered ? sprintf('%.2f', $recovered) : 'never',
        counts($sync), counts(\%async_n), $accepted, counts($states),
        scalar @$lost, @window ? sprintf(', answered 202 from %.2f to %.2f '
        . 's after the fault', $window[0], $window[-1]) : '');
    if ($wait) {
        # WAIT n proves n replicas have the job, not that the one the
        # sentinels promote does: after SENTINEL FAILOVER the old master
        # takes writes until it is demoted, and the replicas left with it
        # acknowledge them (then resync from the new master, dropping
        # them).  Only WAIT for every replica closes that window: a figure
        # with fewer, asserted with all.
        local $TODO = 'SENTINEL FAILOVER, WAIT for fewer than all replicas'
            if $fault eq 'FAILOVER' && $need < $replicas;
        is(scalar @$lost, 0, "$label: no accepted async job lost")
            or diag("lost: @$lost[0 .. 4]");
    }
    ok($accepted > 0, "$label: async jobs accepted");

    stop_nginx();
    stop_sidecar();
    stop_proc("sentinel-$_", 5) for $topo->sentinel_ports;
    stop_proc("redis-$_", 5) for $topo->redis_ports;
    return ($follow, scalar @$lost, $accepted);
}

# (wait_replicas, fault, replicas).  With two replicas a SIGKILL leaves
# the new master one, so WAIT 1 succeeds again (with one, every job would
# be 503 not_replicated until a replica joins); the sentinels promote the
# replica with the most data, which has everything WAIT 1 counted.
# SENTINEL FAILOVER with wait_replicas=all of two replicas: no loss, but
# jobs wait for the demoted master to rejoin as the new master's second
# replica (some seconds: the sentinels' INFO and hello periods, which
# SentinelTopology shortens).  OFFLOAD_E2E_ALL=1
# adds SENTINEL FAILOVER with WAIT 1 of one replica (no loss, the same
# wait) and of two replicas (jobs lost: a TODO, see run()).
my @CASES = ([ 1, 'KILL', 2 ], [ 0, 'KILL', 1 ], [ 0, 'FAILOVER', 1 ],
    [ 'all', 'FAILOVER', 2 ],
    $ENV{OFFLOAD_E2E_ALL} ? ([ 1, 'FAILOVER', 1 ], [ 1, 'FAILOVER', 2 ])
    : ());
my %took;
for my $i (1 .. $RUNS) {
    for my $case (@CASES) {
        my ($wait, $fault, $replicas) = @$case;
        my $what = ($fault eq 'KILL' ? 'SIGKILL' : 'SENTINEL FAILOVER')
            . ($wait ? ", wait_replicas=$wait" : ', no wait_replicas')
            . ", $replicas replica" . ($replicas > 1 ? 's' : '');
        my ($f, $lost, $accepted) = run("$what (run $i)", @$case);
        push @{ $took{$what} }, sprintf '%s s, lost %d of %d',
            defined $f ? sprintf('%.2f', $f) : 'never', $lost, $accepted;
    }
}
diag("$_: jobs again after the new master: " . join '; ', @{ $took{$_} })
    for sort keys %took;

finish();
