#!/usr/bin/perl
# GET /jobs/<id> names any slot it likes (the id's tag): a stream of them
# for a slot no master serves (a cluster with cluster-require-full-coverage
# no and a slot deleted everywhere) is answered 503 each, and asks the
# seeds for the map at most once per 500 ms, not once per request
# (CLUSTER SLOTS counted in every node's INFO commandstats).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
my $ctl = $cl->owner_port('ctl');
redis_use($ctl);

# a tag whose slot is not the control slot
my ($tag) = grep { $cl->slot_of($_) != $cl->slot_of('ctl') }
    qw(abcde bcdef cdef0);
my $slot = $cl->slot_of($tag);
for my $port (@masters) {
    $cl->ok_cmd($port, 'CONFIG', 'SET', 'cluster-require-full-coverage',
        'no');
}
for my $port (@masters) {
    $cl->ok_cmd($port, 'CLUSTER', 'DELSLOTS', $slot);
}
ok(!defined $cl->slot_owner($slot), "slot $slot (of tag $tag) unserved");

start_nginx(level => 'info', workers => 1, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location /jobs/ { offload_jobs; }
}
HTTP
my $id = ('0' x 11) . $tag . ('0' x 16);
ok(wait_until(sub { http('GET', "/jobs/$id")->{status} == 503 }, scaled(10),
    'nginx up'), 'GET of an id of the unserved slot: 503');

sub slots_asked {
    my $n = 0;
    for my $port (@masters) {
        my $info = $cl->cmd($port, 'INFO', 'commandstats') // '';
        $n += $1 if $info =~ /^cmdstat_cluster\|slots:calls=(\d+)/m;
    }
    return $n;
}

# wait for the rounds the first requests started to end
my $before = slots_asked();
ok(wait_until(sub {
    select(undef, undef, undef, 0.6);
    my $now = slots_asked();
    my $same = $now == $before;
    $before = $now;
    $same;
}, scaled(10), 'no round on'), 'no map round on');

my $t0 = time;
my ($n, $bad) = (200, 0);
for (1 .. $n) {
    $bad++ if http('GET', "/jobs/$id")->{status} != 503;
}
my $spent = time - $t0;
my $asked = slots_asked() - $before;
is($bad, 0, "$n GETs of ids of the unserved slot: 503 each");
# one round per 500 ms, each asking one seed (two when a round is asked
# for while one is on)
my $most = 2 * (int($spent / 0.5) + 2);
ok($asked <= $most, sprintf('CLUSTER SLOTS asked %d times in %.2f s '
    . '(at most %d), not once per request', $asked, $spent, $most));
diag(sprintf '%d GETs of an unserved slot in %.2f s: %d CLUSTER SLOTS',
    $n, $spent, $asked);

done_testing();
