#!/usr/bin/perl
# The sidecar on Redis Sentinel (redis sentinel://...): it asks the
# sentinels for the master, serves jobs there, and follows a failover,
# SENTINEL FAILOVER (a +switch-master message, READONLY) and SIGKILL of
# the master (the connection dies): after each, jobs submitted on the new
# master are answered again within 5 s.  The time to recover is printed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OffloadTest;
use SentinelTopology;

my $topo = start_sentinel_topology(name => 'offload');
redis_use($topo->master_port);
start_sidecar(redis => 'sentinel://' . $topo->url . ' wait_replicas=1',
    conf => "redis_timeout 1s;\nqueue echo { handler echo; workers 2; }\n");
ok(1, 'the sidecar registered on the master the sentinels name');

my $ctl = build_path('offloadctl');
my $n = 0;

# One job on the Redis at $port through offloadctl submit --wait: whether
# it came back with its own input.
sub job_ok {
    my ($port) = @_;
    $n++;
    my $cmd = "$ctl -r 127.0.0.1:$port submit echo '{\"n\":$n}' --wait "
        . "--timeout 1s";
    my $out = `$cmd 2>&1`;
    return $? == 0 && $out =~ /"n":\s*$n\b/;
}

ok(wait_until(sub { job_ok($topo->master_port) }, scaled(10),
    'a first job'), 'a job through the master');
my $stats = redis_cmd_at($topo->master_port, 'INFO', 'commandstats');
ok($stats =~ /^cmdstat_wait:calls=(\d+)/m && $1 >= 1,
    'wait_replicas=1: the worker WAITs for a replica after a job');

# wait_replicas=all: the workers WAIT for as many replicas as the master's
# ROLE lists (one here); asking for more would time out after
# redis_timeout and log that fewer had the completion
stop_sidecar();
my $log = tmpdir() . '/sidecar.log';
my $logged = -s $log // 0;
sub calls {
    my ($cmd) = @_;
    redis_cmd_at($topo->master_port, 'INFO', 'commandstats')
        =~ /^cmdstat_$cmd:calls=(\d+)/m ? $1 : 0;
}
my ($roles, $waits) = (calls('role'), calls('wait'));
start_sidecar(redis => 'sentinel://' . $topo->url . ' wait_replicas=all',
    conf => "redis_timeout 1s;\nqueue echo { handler echo; workers 2; }\n");
ok(!grep({ !job_ok($topo->master_port) } 1 .. 6),
    'wait_replicas=all: jobs answered');
ok(calls('role') > $roles,
    'wait_replicas=all: the workers ask the master for its replicas');
ok(wait_until(sub { calls('wait') >= $waits + 6 }, scaled(5),
    'WAITs after the jobs'), 'wait_replicas=all: a WAIT after each job');
unlike(substr(slurp($log), $logged), qr/WAIT: \d+ of \d+ replicas/,
    'wait_replicas=all: every WAIT met (it asked for the one replica)');

# wait_replicas=all on a master with no replica online when the workers
# connect (or a new master before its replicas follow it): no WAIT, but
# ROLE is asked again after each job, so a replica that comes online later
# is waited for from then on
sub calls_at {
    my ($port, $cmd) = @_;
    redis_cmd_at($port, 'INFO', 'commandstats')
        =~ /^cmdstat_$cmd:calls=(\d+)/m ? $1 : 0;
}
stop_sidecar();
my $solo = start_redis(port => free_port());
start_sidecar(redis => "127.0.0.1:$solo wait_replicas=all",
    conf => "redis_timeout 1s;\nqueue echo { handler echo; workers 2; }\n");
ok(job_ok($solo) && calls_at($solo, 'role') > 0
    && calls_at($solo, 'wait') == 0,
    'wait_replicas=all, no replica online: jobs answered without a WAIT');
my $late = free_port();
mkdir tmpdir() . "/replica-$late";
spawn("redis-$late", tmpdir() . "/redis-$late.log", {}, 'redis-server',
    '--port', $late, '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', tmpdir() . "/replica-$late",
    '--replicaof', '127.0.0.1', $solo, '--repl-diskless-sync-delay', 0);
ok(wait_until(sub {
    my $role = eval { redis_cmd_at($solo, 'ROLE') };
    ref $role eq 'ARRAY' && @{ $role->[2] // [] } == 1;
}, scaled(10), 'the replica online'), 'a replica comes online');
$logged = -s $log;
ok(wait_until(sub { job_ok($solo) && calls_at($solo, 'wait') > 0 },
    scaled(10), 'a WAIT for the replica'),
    'wait_replicas=all: the replica that came later is waited for');
unlike(substr(slurp($log), $logged), qr/WAIT: \d+ of \d+ replicas/,
    '... and every WAIT met');
stop_sidecar();
stop_proc("redis-$late", 10);
stop_redis();
redis_use($topo->master_port);
start_sidecar(redis => 'sentinel://' . $topo->url . ' wait_replicas=all',
    conf => "redis_timeout 1s;\nqueue echo { handler echo; workers 2; }\n");

# Jobs on whatever master the sentinels agree on, from $t0 until one is
# answered: the seconds that took, or undef after 20 s.
sub recovery {
    my ($t0) = @_;
    my $answered;
    wait_until(sub {
        my $m = $topo->master_port or return 0;
        job_ok($m) and $answered = time;
    }, scaled(20), 'a job answered on the new master');
    return defined $answered ? $answered - $t0 : undef;
}

# Checks and prints a failover's times from $t0: when the sentinels
# agreed on the new master, when jobs were answered again.  The sidecar's
# part (answered after the sentinels agreed) must stay under 1 s: after a
# SIGKILL its reconnects wait out a backoff of up to 2.5 s, which the
# +switch-master it hears meanwhile cuts short.  The whole must stay
# under 5 s unless the sentinels' own election took longer.
sub check_recovery {
    my ($what, $t0, $elected) = @_;
    my $took = recovery($t0);
    my $follow = defined $took ? $took - ($elected - $t0) : undef;
    diag(sprintf '%s: sentinels agreed on the new master after %.2f s, '
        . 'jobs answered again after %.2f s', $what, $elected - $t0,
        $took // -1);
    ok(defined $follow && $follow <= scaled(1), "$what: the sidecar "
        . 'follows the new master within 1 s')
        or diag('took ' . ($took // 'forever'));
    ok(defined $took && ($took <= 5 || $elected - $t0 > 3),
        "$what: jobs answered again within 5 s");
}

# ---- SENTINEL FAILOVER: the old master becomes a replica
my $t0 = time;
my ($old, $new) = $topo->failover(scaled(20));
ok($new, "SENTINEL FAILOVER moved the master from $old to $new");
check_recovery('SENTINEL FAILOVER', $t0, time);
like(slurp(tmpdir() . '/sidecar.log'), qr/moved to|READONLY/,
    'the sidecar saw its master go');
ok($topo->wait_ready(scaled(30)), 'the old master follows the new one');

# ---- SIGKILL of the master: no answer at all, then a new master
$t0 = time;
$old = $topo->kill_master('KILL');
$new = $topo->wait_master_change($old, scaled(30));
ok($new, "the sentinels promoted $new after SIGKILL of $old");
check_recovery('SIGKILL of the master', $t0, time);

redis_use($new);
ok(wait_until(sub { (node_doc() // {})->{pid} }, scaled(10),
    'node document on the new master'), 'the node registers on the new '
    . 'master');

my $out = `$ctl -r sentinel://${\ $topo->url} queues 2>&1`;
is($? >> 8, 0, 'offloadctl -r sentinel://...: exit 0') or diag($out);
like($out, qr/^echo\s/m, 'it reads the new master the sentinels name');

finish();
