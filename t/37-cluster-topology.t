#!/usr/bin/perl
# The test harness's Redis Cluster (t/lib/ClusterTopology.pm), which the
# cluster tests build on: three masters serve every slot, a key lands on
# the master CLUSTER KEYSLOT names, and a slot moved with its keys is
# served by its new master while the old one redirects with MOVED.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3, replicas => 1);
my @masters = $cl->master_ports;
is(scalar @masters, 3, 'three masters');

my $served = 0;
for my $range (@{ $cl->cmd($masters[0], 'CLUSTER', 'SLOTS') }) {
    $served += $range->[1] - $range->[0] + 1;
}
is($served, 16384, 'every slot is served');

is($cl->slot_of('offload:{echo}:jobs'), $cl->slot_of('echo'),
    "a queue's keys are in its name's slot");

my %queue_on = map { $_ => $cl->queue_on($_) } @masters;
ok(!grep({ !defined } values %queue_on), 'each master serves some queue');

my $q = $queue_on{ $masters[0] };
my $key = "offload:{$q}:result:1";
is($cl->cmd($masters[0], 'SET', $key, 'v'), 'OK', 'a key written on its master');
my $moved = $cl->cmd($masters[1], 'GET', $key);
like(ref $moved ? $moved->{error} : '', qr/^MOVED \d+ 127\.0\.0\.1:$masters[0]$/,
    'another master redirects with MOVED');

my $slot = $cl->slot_of($q);
is($cl->move_slot($slot, $masters[2]), $masters[0], 'slot moved from its master');
is($cl->owner_port($q), $masters[2], 'the new master serves it');
is($cl->cmd($masters[2], 'GET', $key), 'v', 'its key went with it');
$moved = $cl->cmd($masters[0], 'GET', $key);
like(ref $moved ? $moved->{error} : '', qr/^MOVED $slot 127\.0\.0\.1:$masters[2]$/,
    'the old master redirects to the new one');

my $replica = $cl->replica_of($masters[2]);
ok($replica, 'the master has a replica');
# (WAIT from a connection that wrote nothing answers at once: the offsets)
ok(wait_replicated($masters[2], 1, scaled(10)), 'the replica has its writes');
my $t0 = time;
$cl->kill_node($masters[2], 'KILL');
is($cl->wait_owner_change($slot, $masters[2], scaled(20)), $replica,
    'its replica took the slot over');
diag(sprintf 'cluster failover: %.1f s with cluster-node-timeout 1000',
    time - $t0);
is($cl->cmd($replica, 'GET', $key), 'v', 'the new master has the key');

done_testing();
