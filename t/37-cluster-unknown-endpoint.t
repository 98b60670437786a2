#!/usr/bin/perl
# A Redis Cluster that does not name its nodes' endpoints
# (cluster-preferred-endpoint-type unknown-endpoint): CLUSTER SLOTS gives
# each master a nil host and a MOVED an empty one (":<port>").  nginx, as
# the sidecar, takes such a host for the node it asked or that answered:
# jobs on queues of two masters answered 200, and an async job of a queue
# whose slot moved unknown to nginx (no sharded reply channel of its told
# it) follows the MOVED ":<port>" to the new master.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3,
    args => [ '--cluster-preferred-endpoint-type', 'unknown-endpoint' ]);
my @masters = $cl->master_ports;
my $slots = $cl->cmd($masters[0], 'CLUSTER', 'SLOTS');
ok(ref $slots eq 'ARRAY' && !defined $slots->[0][2][0],
    'CLUSTER SLOTS names no host (nil)');
my $ctl = $cl->control_port;
my ($other, $third) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($other);
my $qc = $cl->queue_on($other, map { "c$_" } 0 .. 99);
ok($qa && $qb && $qc, "queue $qa on $ctl, $qb and $qc on $other");

ok($cl->start_offload(echo => [ $qa, $qb, $qc ], level => 'info',
    workers => 1, ready => [ "/sync/$qa", '{}' ], server => <<"LOCATIONS"),
    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }
    location = /async { offload_pass $qc; offload_mode async; }
    location /jobs/ { offload_jobs; }
LOCATIONS
    "nginx answers on $qa");
my $r = post_json("/sync/$qb", { q => $qb });
is($r->{status}, 200, "a job on $qb (on $other) answered 200");
is($r->{json}{q} // '', $qb, 'with its result');
unlike(slurp(nginx_error_log()), qr/not a numeric address/,
    'no master refused for its host');

# the slot of $qc moved to $third: nginx's next job there is answered
# MOVED <slot> :<port> by $other
my $slot = $cl->slot_of($qc);
is($cl->cmd($other, 'SET', "{$qc}probe", 1), 'OK', 'a key in the slot');
$cl->move_slot($slot, $third);
my $moved = $cl->cmd($other, 'GET', "{$qc}probe");
is(ref $moved eq 'HASH' ? $moved->{error} : $moved, "MOVED $slot :$third",
    "$other answers MOVED with an empty host");
$r = post_json('/async', { after => 1 });
is($r->{status}, 202, "an async job on $qc after the move answered 202")
    or diag($r->{content});
my $id = $r->{json}{id} // '-';
like(slurp(nginx_error_log()),
    qr/job $id: MOVED $slot :$third, sent to 127\.0\.0\.1:$third\b/,
    'the MOVED with an empty host followed to the answering node\'s host')
    or diag(grep { /MOVED|map|left/ } split /^/, slurp(nginx_error_log()));
my $doc;
ok(wait_until(sub {
    $doc = http('GET', "/jobs/$id")->{json};
    ($doc->{status} // '') eq 'done';
}, scaled(10), 'the job done'), "job $id done on $third");
is_deeply($doc->{result}, { after => 1 }, 'with its result');

done_testing();
