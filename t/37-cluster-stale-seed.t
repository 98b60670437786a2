#!/usr/bin/perl
# nginx's only seed is behind a slot's move: a job's XADD meets the old
# master's MOVED and follows it; the map nginx then asks the seed for
# still gives the slot to the old master.  The MOVED wins (the seed is
# asked again shortly, until it agrees): the next jobs go to the new
# master at once, no MOVED again for each.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3, node_timeout => 5000);
my $ctl = $cl->control_port;
my ($from, $to) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($from);
ok($qa && $qb, "queue $qa on $ctl (the seed), $qb on $from");

ok($cl->start_offload(echo => [ $qa, $qb ], level => 'info', workers => 1,
    redis => "cluster://127.0.0.1:$ctl", server => <<'LOCATIONS'),
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
LOCATIONS
    "nginx answers on $qa");

sub owner_at {
    my ($port, $slot) = @_;
    my $slots = $cl->cmd($port, 'CLUSTER', 'SLOTS');
    my ($range) = grep { $slot >= $_->[0] && $slot <= $_->[1] }
        ref $slots eq 'ARRAY' ? @$slots : ();
    return $range ? $range->[2][1] : 0;
}
sub redirected {
    my @n = slurp(nginx_error_log()) =~ /: MOVED \d+ \S+, sent to /g;
    return scalar @n;
}

# the move, while nginx sends nothing to $qb; then the seed made to forget
# it (gossip from $to corrects it later)
my $slot = $cl->slot_of($qb);
is($cl->move_slot($slot, $to), $from, "slot of $qb moved to $to");
$cl->ok_cmd($ctl, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $cl->node_id($from));
is(owner_at($ctl, $slot), $from, "the seed says $from again");

my $before = redirected();
my $ok = 0;
for my $i (1 .. 5) {
    my $r = http('POST', "/jobs/$qb", qq({"i":$i}));
    $ok++ if $r->{status} == 200 && ($r->{json}{i} // 0) == $i;
}
is($ok, 5, "5 jobs to $qb answered 200, each its own result");
my $stale = owner_at($ctl, $slot) == $from;
diag("the seed still behind after the jobs: " . ($stale ? 'yes' : 'no'));
is(redirected() - $before, 1, 'one MOVED followed, not one per job')
    or diag(slurp(nginx_error_log()));

done_testing();
