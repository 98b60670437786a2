#!/usr/bin/perl
# nginx's first job of a queue while the queue's slot is being migrated:
# its XADD on the old master is answered ASK (the stream already moved),
# sent with ASKING to the importing node, and answered 200 once the move
# ends.  The queue's sharded reply channel is asked for on the master the
# map names, not on the importing node (which answers an SSUBSCRIBE
# without ASKING with MOVED); and a subscription left unconfirmed is asked
# again when a new map comes: once nginx learns the move, the channel is
# subscribed on the new master.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
my $ctl = $cl->owner_port('ctl');
my ($from, $to) = grep { $_ != $ctl } @masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($from);
my $qp = $cl->queue_on($from, map { "p$_" } 0 .. 99);
ok($qa && $qb && $qp, "queue $qa on $ctl, $qb and $qp on $from");
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $qa => 1, $qb => 1 },
    conf => "queue $qa { handler echo; }\nqueue $qb { handler echo; }\n");
start_nginx(level => 'info', workers => 1, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location = /parked { offload_pass $qp; offload_timeout 3s; }
}
HTTP
ok(wait_nginx_ready("/jobs/$qa", '{}', 1), "nginx answers on $qa");

sub shard_channels {
    my ($port, $q) = @_;
    my $ch = $cl->cmd($port, 'PUBSUB', 'SHARDCHANNELS',
        "offload:{$q}:reply:*");
    return ref $ch eq 'ARRAY' ? scalar @$ch : -1;
}

# the slot half moved: the stream on $to, the slot still $from's
my $slot = $cl->slot_of($qb);
my ($from_id, $to_id) = map { $cl->node_id($_) } $from, $to;
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
$s = send_post('/parked', '{}');
my $e;
ok(wait_until(sub {
    my $x = $cl->cmd($from, 'XRANGE', "offload:{$qp}:jobs", '-', '+');
    $e = { @{ $x->[1][1] } } if ref $x eq 'ARRAY' && @$x > 1;
    $e;
}, scaled(10), 'the parked job'), "a job on $qp, nobody to run it");
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

done_testing();
