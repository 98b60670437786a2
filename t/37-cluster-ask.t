#!/usr/bin/perl
# ASK redirections met by nginx while a queue's slot is being migrated.
#
# nginx's first job of a queue while the queue's slot is being migrated:
# its XADD on the old master is answered ASK (the stream already moved),
# sent with ASKING to the importing node, and answered 200 once the move
# ends.  The queue's sharded reply channel is asked for on the master the
# map names, not on the importing node (which answers an SSUBSCRIBE
# without ASKING with MOVED); and a subscription left unconfirmed is asked
# again when a new map comes: once nginx learns the move, the channel is
# subscribed on the new master.
#
# A job's last look at its result key, moved meanwhile to the importing
# node of its slot's migration: the old master answers ASK, the look
# follows it (ASKING) and finds the result.
#
# A job's last look at its result key, in a slot whose migration is half
# set up (MIGRATING on the old master, the new one not IMPORTING): the old
# master answers ASK, the new one MOVED back, and the look spends its
# redirects.  Redis never said whether a result is stored: the job is
# answered 503 with Retry-After, never 504 "no result in time" as if
# nothing were there.  That job is set up first: its 3 s deadline runs
# out while the other cases run (one cluster, one wait).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my $ctl = $cl->control_port;
my ($from, $to) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($from);
my $qp = $cl->queue_on($from, map { "p$_" } 0 .. 99);
# the half set-up migration's queue: a slot of its own
my $qr = $cl->queue_on($from, grep {
    my $s = $cl->slot_of($_);
    $s != $cl->slot_of($qb) && $s != $cl->slot_of($qp)
} map { "r$_" } 0 .. 99);
ok($qa && $qb && $qp && $qr,
    "queue $qa on $ctl, $qb, $qp and $qr on $from");

ok($cl->start_offload(echo => [ $qa, $qb ], level => 'info', workers => 1,
    server => <<"LOCATIONS"), "nginx answers on $qa");
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location = /parked { offload_pass $qp; offload_timeout 3s; }
    location = /half { offload_pass $qr; offload_timeout 3s; }
LOCATIONS

my ($from_id, $to_id) = map { $cl->node_id($_) } $from, $to;

# Posts a job to $path, a queue whose stream $q nobody reads: the socket
# and the job's stream entry (the $nth) once it is there.
sub parked_job {
    my ($path, $q, $nth) = @_;
    my $s = send_post($path, '{}');
    my $e;
    ok(wait_until(sub {
        my $x = $cl->cmd($from, 'XRANGE', "offload:{$q}:jobs", '-', '+');
        $e = { @{ $x->[$nth][1] } } if ref $x eq 'ARRAY' && @$x > $nth;
        $e;
    }, scaled(10), 'the parked job'), "a job on $q, nobody to run it");
    return ($s, $e // {});
}

# ---- the half set-up migration: MIGRATING on $from, $to not IMPORTING
is($cl->cmd($from, 'XGROUP', 'CREATE', "offload:{$qr}:jobs", 'workers',
    '$', 'MKSTREAM'), 'OK', "$qr\'s stream, which no worker reads");
my ($hs, $he) = parked_job('/half', $qr, 0);
my $rslot = $cl->slot_of($qr);
$cl->ok_cmd($from, 'CLUSTER', 'SETSLOT', $rslot, 'MIGRATING', $to_id);
my $probe = $cl->cmd($from, 'GET', "offload:{$qr}:result:$he->{id}");
is(ref $probe eq 'HASH' ? $probe->{error} : $probe,
    "ASK $rslot 127.0.0.1:$to", "$from answers ASK for the result key");

sub shard_channels {
    my ($port, $q) = @_;
    my $ch = $cl->cmd($port, 'PUBSUB', 'SHARDCHANNELS',
        "offload:{$q}:reply:*");
    return ref $ch eq 'ARRAY' ? scalar @$ch : -1;
}

# ---- the slot half moved: the stream on $to, the slot still $from's
my $slot = $cl->slot_of($qb);
$cl->ok_cmd($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id);
$cl->ok_cmd($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id);
my $keys = $cl->cmd($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 100);
ok(ref $keys eq 'ARRAY' && @$keys, "$qb\'s keys: @{ ref $keys ? $keys : [] }");
is($cl->cmd($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS',
    @$keys), 'OK', "migrated to $to");

my $s = send_post("/jobs/$qb", '{"asked":1}');
ok(wait_until(sub {
    slurp(nginx_error_log()) =~ /: ASK $slot \S+:$to, sent to \S+:$to\b/
}, scaled(10), 'the ASK followed'), "the job's XADD followed ASK to $to");

for my $port ($to, $from, $ctl) {
    $cl->ok_cmd($port, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id);
}
ok($cl->wait_ok(scaled(30)), "the slot of $qb is $to\'s");
my $a = read_answer($s, scaled(30));
is($a->{status}, 200, 'the job answered 200') or diag($a->{content});
is($a->{json}{asked} // 0, 1, 'with its own result');

# nginx learns the move from the next job's MOVED; its map then names
# $to, and the queue's channel is subscribed there
my $r = http('POST', "/jobs/$qb", '{"after":1}');
is($r->{status}, 200, 'the next job answered 200');
ok(wait_until(sub { shard_channels($to, $qb) >= 1 }, scaled(10),
    'sharded channel on the new master'),
    "$qb\'s sharded reply channel is subscribed on $to");
unlike(slurp(nginx_error_log()), qr/unexpected reply on the subscriber/,
    'no SSUBSCRIBE refused');

# ---- a job's last look at its result key, moved meanwhile to the
# importing node of its slot's migration: the old master answers ASK, the
# look follows it (ASKING) and finds the result
is($cl->cmd($from, 'XGROUP', 'CREATE', "offload:{$qp}:jobs", 'workers',
    '$', 'MKSTREAM'), 'OK', "$qp\'s stream, which no worker reads");
# a first job asks for the queue's sharded channel; once subscribed,
# nginx looks at its jobs' result keys: the job under test comes after,
# or that look could find its result before the move (1 run in 4)
my $first = send_post('/parked', '{"first":1}');
ok(wait_until(sub { shard_channels($from, $qp) >= 1 }, scaled(10),
    'the sharded channel'), "$qp\'s sharded channel on $from");
($s, my $e) = parked_job('/parked', $qp, 1);
my $rkey = "offload:{$qp}:result:$e->{id}";
is($cl->cmd($from, 'SET', $rkey, "OR1 $e->{id} 200 1 1\n{\"asked\":2}"),
    'OK', 'its result stored, never published');
my $pslot = $cl->slot_of($qp);
$cl->ok_cmd($to, 'CLUSTER', 'SETSLOT', $pslot, 'IMPORTING', $from_id);
$cl->ok_cmd($from, 'CLUSTER', 'SETSLOT', $pslot, 'MIGRATING', $to_id);
is($cl->cmd($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS',
    $rkey), 'OK', "the result key migrated to $to, the slot still $from\'s");
$a = read_answer($s, scaled(30));
is($a->{status}, 200, 'the job answered 200 at its last look')
    or diag($a->{content});
is($a->{json}{asked} // 0, 2, 'with its result, read on the importing node');
like(slurp(nginx_error_log()),
    qr/job $e->{id}: ASK $pslot \S+:$to, sent to /, 'its look followed ASK');
is(read_answer($first, scaled(30))->{status}, 504,
    'the first job, without a result, 504 at its deadline');

# ---- the half set-up migration's job, answered at its deadline meanwhile
my $raw = read_raw($hs, scaled(30));
like($raw, qr{^HTTP/1\.1 503 }, 'the job answered 503 at its last look, '
    . 'not 504') or diag($raw);
like($raw, qr/"code":"redis_unavailable"/, 'redis_unavailable');
like($raw, qr/\r\nRetry-After: 1\r\n/i, 'Retry-After: 1');
my $log = slurp(nginx_error_log());
like($log, qr/job $he->{id}: ASK $rslot \S+:$to, sent to /,
    'its look followed ASK');
like($log, qr/job $he->{id}: its result could not be read: (ASK|MOVED) /,
    'the error log says why');

done_testing();
