#!/usr/bin/perl
# Submitting through a Redis Cluster from one's own program: liboffload
# (offload_client_conf_t cluster, driven by build/line_client) and
# sdk/python/offload_client.py (cluster_redis()) ask the seeds for the
# slot map, submit each job to its queue's master (two queues on two
# masters of a real 3-master cluster) and get its result pushed on the
# queue's sharded reply channel, SSUBSCRIBEd on that master.  Then one
# queue's slot moves to another master: the same clients submit again,
# follow the MOVED (the job added once, on the new master) and are
# answered there.  A slot caught half moved (its keys gone, MIGRATING):
# a job follows the ASK, and its result, published once the move ends
# (the reply channel's slot gone), is read from its key.  Last, the
# master of both queues SIGKILLed: once its replica is promoted, the same
# clients (their seeds one fewer) submit there, each job added once.  Both
# clients run twice: as the default user, and as README.md's
# offload-submitter (its rules on every node), whom Redis denies nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use LineDriver;
use ClusterTopology;
use AclRules;

my $python = '/usr/bin/python3';     # Debian's, with python3-redis
my $root = "$FindBin::Bin/..";

my $topo = start_cluster_topology(masters => 3, replicas => 1);
my @masters = $topo->master_ports;
my $qa = $topo->queue_on($masters[0], map { "cc$_" } 0 .. 999);
my $qb = $topo->queue_on($masters[1], map { "cc$_" } 0 .. 999);
my ($pa, $pb) = ($topo->owner_port($qa), $topo->owner_port($qb));
diag("queue $qa on $pa, $qb on $pb");

redis_use($topo->owner_port('offload:{ctl}:nodes'));
start_sidecar(redis => $topo->url,
    conf => "redis_timeout 1s;\n"
        . "queue $qa { handler echo; workers 1; }\n"
        . "queue $qb { handler echo; workers 1; }\n");
for my $q ([ $qa, $pa ], [ $qb, $pb ]) {
    ok(wait_until(sub { $topo->cmd($q->[1], 'EXISTS', "offload:{$q->[0]}:jobs")
        }, scaled(10), "$q->[0] stream"),
        "the sidecar serves $q->[0] on its master $q->[1]");
}

# A client program reading "<queue> <json>" lines, answering a line (see
# t/client/line_client.c; the Python one below prints the same, without
# the ms).
my $py = <<'PY';
import logging, sys, time
sys.path.insert(0, sys.argv[1])
# redis-py logs each MOVED and ASK it follows as an error, with a trace
logging.getLogger("redis.cluster").setLevel(logging.CRITICAL)
from offload_client import Client, cluster_redis
seeds = [(h, int(p)) for h, p in
         (s.rsplit(":", 1) for s in sys.argv[2].split(","))]
login = dict(zip(("username", "password"), sys.argv[3:5]))
jobs = Client(cluster_redis(seeds, socket_timeout=2,
                            socket_connect_timeout=2, **login))
print("connect ok", flush=True)
for line in sys.stdin:
    queue, payload = line.strip().split(" ", 1)
    big = None
    if payload.startswith("big "):
        n = int(payload[4:])
        big = payload = '{"big":"' + "a" * (n - 10) + '"}'
    t0 = time.monotonic()
    try:
        res = jobs.submit(queue, payload, wait=True, timeout=10)
        ms = int((time.monotonic() - t0) * 1000)
        if big is None:
            print("ok", res.status, res.body, ms, flush=True)
        else:
            print("ok", res.status, "big" if res.body == big else "other",
                  len(res.body), ms, flush=True)
    except Exception as e:
        print("error %s: %s" % (type(e).__name__, e), flush=True)
PY
my $dir = tmpdir();
spew("$dir/client.py", $py);

sub ask {
    my ($d, $queue, $json) = @_;
    syswrite($d->{in}, "$queue $json\n");
    return line_of($d, scaled(15)) // 'no answer';
}

# How many reply channels of $queue are SSUBSCRIBEd on the master on
# $port (one per client).
sub shard_channels {
    my ($port, $queue) = @_;
    my $ch = $topo->cmd($port, 'PUBSUB', 'SHARDCHANNELS',
        "offload:{$queue}:reply:*");
    return ref $ch eq 'ARRAY' ? scalar @$ch : -1;
}

# The jobs in $queue's stream ever added on $port (XINFO STREAM's
# entries-added; after ASKING, for a slot being imported there).
sub added {
    my ($port, $queue) = @_;
    my $was = redis_port();
    redis_use($port);
    my (undef, $info) = eval { redis_cmds(['ASKING'],
        [ 'XINFO', 'STREAM', "offload:{$queue}:jobs" ]) };
    redis_use($was);
    return 0 unless ref $info eq 'ARRAY';
    my %h = @$info;
    return $h{'entries-added'} // 0;
}

# README.md's offload-submitter, on every node
my %rules = readme_acl_rules();
my %secret = acl_secrets(%rules);
my $user = 'offload-submitter';
ok($rules{$user}, "README.md documents the rules of $user");
for my $port ($topo->ports) {
    is($topo->cmd($port, 'ACL', 'SETUSER', $user, @{ $rules{$user} }), 'OK',
        "$user on the node $port");
    $topo->cmd($port, 'ACL', 'LOG', 'RESET');
}

my %clients;
for my $login ([], [ $user, $secret{$user} ]) {
    my $as = @$login ? " as $user" : '';
    $clients{"liboffload$as"} = start_driver(build_path('line_client'),
        'cluster://' . $topo->seeds, @$login);
    $clients{"offload_client.py$as"} = start_driver($python,
        "$dir/client.py", "$root/sdk/python", $topo->seeds, @$login);
}

# A result pushed on the reply channel comes at once; a client that
# missed it would wait the whole 10 s and read the result key then.
my $PUSHED_MS = scaled(2500);

for my $name (sort keys %clients) {
    my $c = $clients{$name};
    like(line_of($c, scaled(10)) // '', qr/^connect ok/,
        "$name: connects through the seeds");
    for my $q ([ $qa, $pa ], [ $qb, $pb ]) {
        my ($queue, $port) = @$q;
        my $before = added($port, $queue);
        my $subscribed = shard_channels($port, $queue);
        my $line = ask($c, $queue, qq({"$name":"$queue"}));
        like($line, qr/^ok 200 \{"\Q$name\E":"$queue"\} (\d+)$/,
            "$name: a job on $queue, answered");
        my ($ms) = $line =~ / (\d+)$/;
        ok(defined $ms && $ms < $PUSHED_MS, "$name: ... pushed on its reply "
            . 'channel (' . ($ms // '?') . ' ms)');
        is(added($port, $queue), $before + 1,
            "$name: ... added once, on $queue\'s master $port");
        is(shard_channels($port, $queue), $subscribed + 1,
            "$name: ... its reply channel SSUBSCRIBEd on $port");
    }
}

# ---- a job submitted to be waited for, then one to a mistyped queue of
# another master (its reply channel moved there, the job refused): the
# first one's result, published on the channel left, is looked for in its
# key, not awaited for the whole timeout
{
    my $c = $clients{liboffload};
    my $typo = $topo->queue_on($pb, map { "nosuch$_" } 0 .. 999);
    syswrite($c->{in}, qq(submit $qa {"first":1}\n));
    my ($id) = (line_of($c, scaled(10)) // '') =~ /^submitted (\w{32})$/;
    ok($id, "liboffload: a job submitted on $qa, not waited for yet");
    syswrite($c->{in}, qq(submit $typo {}\n));
    like(line_of($c, scaled(10)) // '', qr/^error -3 unknown queue/,
        "liboffload: then one to $typo, unknown, on $pb");
    syswrite($c->{in}, "wait $qa $id 10000\n");
    my $line = line_of($c, scaled(15)) // 'no answer';
    like($line, qr/^ok 200 \{"first":1\} \d+$/,
        'liboffload: the wait for the first one answers');
    my ($ms) = $line =~ / (\d+)$/;
    ok(defined $ms && $ms < $PUSHED_MS, 'liboffload: ... at once, not at '
        . 'its timeout (' . ($ms // '?') . ' ms)');
}

# ---- a 2 MB payload (its body key, written in a transaction on the
# queue's master) and its 2 MB result (a notice on the reply channel, then
# the result list read there)
my $BIG = 2 * 1024 * 1024 + 7;
for my $name (sort keys %clients) {
    like(ask($clients{$name}, $qb, "big $BIG"), qr/^ok 200 big $BIG \d+$/,
        "$name: a 2 MB job on $qb, and its 2 MB result");
}

# ---- a slot moved: MOVED followed, by the same clients
my $slot = $topo->slot_of($qa);
my $to = $masters[2];
$topo->move_slot($slot, $to);
is($topo->owner_port($qa), $to, "slot $slot of $qa moved from $pa to $to");
ok(wait_until(sub { $topo->cmd($to, 'EXISTS', "offload:{$qa}:jobs") },
    scaled(10), 'stream moved'), "... with its stream");

for my $name (sort keys %clients) {
    my $c = $clients{$name};
    my $before = added($to, $qa);
    my $subscribed = shard_channels($to, $qa);
    my $line = ask($c, $qa, qq({"$name":"moved"}));
    like($line, qr/^ok 200 \{"\Q$name\E":"moved"\} (\d+)$/,
        "$name: the next job on $qa, after its slot moved, answered");
    my ($ms) = $line =~ / (\d+)$/;
    ok(defined $ms && $ms < $PUSHED_MS, "$name: ... pushed on its reply "
        . 'channel (' . ($ms // '?') . ' ms)');
    is(added($to, $qa), $before + 1, "$name: ... added once, on $to");
    is(shard_channels($to, $qa), $subscribed + 1,
        "$name: ... its reply channel SSUBSCRIBEd on $to now");
    like(ask($c, $qb, qq({"$name":"still"})),
        qr/^ok 200 \{"\Q$name\E":"still"\} \d+$/,
        "$name: $qb, not moved, still answered");
}

# ---- a slot half moved: its keys (the stream) on $to2 already, the
# slot MIGRATING on $pb: an XADD there is answered ASK
my $slot_b = $topo->slot_of($qb);
my $to2 = $masters[2];
$topo->begin_move_slot($slot_b, $to2);
is($topo->cmd($pb, 'CLUSTER', 'COUNTKEYSINSLOT', $slot_b), 0,
    "slot $slot_b of $qb MIGRATING from $pb to $to2, its keys moved");
for my $name (sort keys %clients) {
    my $before = added($to2, $qb);
    syswrite($clients{$name}{in}, qq($qb {"$name":"ask"}\n));
    ok(wait_until(sub { added($to2, $qb) > $before }, scaled(10),
        "$name: job on $to2"), "$name: a job on $qb follows the ASK to $to2")
        or diag(line_of($clients{$name}, 0) // '');
}
$topo->end_move_slot($slot_b, $to2);
for my $name (sort keys %clients) {
    like(line_of($clients{$name}, scaled(15)) // 'no answer',
        qr/^ok 200 \{"\Q$name\E":"ask"\} \d+$/,
        "$name: ... answered once the slot moved (its result key read)");
    like(ask($clients{$name}, $qb, qq({"$name":"after"})),
        qr/^ok 200 \{"\Q$name\E":"after"\} \d+$/,
        "$name: the next job on $qb is answered too");
}

# ---- the master of both queues now SIGKILLed: its replica promoted
my $old = $topo->owner_port($qa);
is($topo->owner_port($qb), $old, "$qa and $qb both on $old now");
$topo->kill_node($old, 'KILL');
my $new = $topo->wait_owner_change($slot, $old, scaled(30));
ok($new, "master $old SIGKILLed, its replica " . ($new // 'none')
    . ' promoted');
$new //= 0;
my $probe = sprintf '%032x', 0xfa11;
$topo->cmd($new, 'XADD', "offload:{$qa}:jobs", 'NOMKSTREAM', '*', v => 1,
    id => $probe, payload => '{}');
ok(wait_until(sub { $topo->cmd($new, 'EXISTS',
    "offload:{$qa}:result:$probe") }, scaled(20), 'the sidecar on the new '
    . 'master'), "the sidecar serves $qa on $new");
for my $name (sort keys %clients) {
    for my $queue ($qa, $qb) {
        my $before = added($new, $queue);
        my $line = ask($clients{$name}, $queue, qq({"$name":"failover"}));
        like($line, qr/^ok 200 \{"\Q$name\E":"failover"\} \d+$/,
            "$name: a job on $queue after the failover, answered");
        my ($ms) = $line =~ / (\d+)$/;
        ok(defined $ms && $ms < $PUSHED_MS, "$name: ... pushed on its "
            . 'reply channel (' . ($ms // '?') . ' ms)');
        is(added($new, $queue), $before + 1,
            "$name: ... added once, on $new");
    }
}

for my $port ($topo->ports) {
    my $log = $topo->cmd($port, 'ACL', 'LOG');
    is(ref $log eq 'ARRAY' ? scalar @$log : -1, 0,
        "node $port denied $user nothing (ACL LOG)")
        or diag(explain($log));
}

stop_drivers();
finish();
