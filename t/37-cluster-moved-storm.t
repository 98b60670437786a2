#!/usr/bin/perl
# Two masters that disagree about a slot (each answers MOVED to the other)
# under steady traffic: every MOVED asks for the slot map again, and each
# nginx worker must not ask the seeds CLUSTER SLOTS back to back, one
# round per round trip: at most one round per 500 ms
# (NGX_HTTP_OFFLOAD_REMAP_RETRY) from those, plus the few that re-ask a
# seed contradicting a MOVED.  The jobs are answered (an error: the
# redirections run out), and once the masters agree again, jobs go
# through.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my ($pa, $pb) = $cl->other_masters;
my $q = $cl->queue_on($pa);
ok($q, "queue $q on $pa");

my $workers = 2;
ok($cl->start_offload(echo => [ $q ], level => 'info',
    workers => $workers, server => <<'LOCATIONS'), "nginx answers on $q");
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
LOCATIONS

sub rounds {
    my @n = slurp(nginx_error_log()) =~ /slot map from /g;
    return scalar @n;
}

# $pa forgets the slot (its keys stay) and names $pb; $pb still names $pa:
# neither claims it, so no gossip settles it
my $slot = $cl->slot_of($q);
$cl->ok_cmd($pa, 'CLUSTER', 'DELSLOTS', $slot);
$cl->ok_cmd($pa, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $cl->node_id($pb));
my $key = "offload:{$q}:x";
sub error_of { my $r = $cl->cmd(@_); ref $r ? $r->{error} // '' : '' }
like(error_of($pa, 'GET', $key), qr/^MOVED \d+ \S+:$pb$/,
    "$pa answers MOVED to $pb");
like(error_of($pb, 'GET', $key), qr/^MOVED \d+ \S+:$pa$/,
    "$pb answers MOVED to $pa");

my $before = rounds();
my ($jobs, $answered, $t0) = (0, 0, time);
while (time - $t0 < 3) {
    my $r = http('POST', "/jobs/$q", '{}');
    $jobs++;
    $answered++ if $r->{status};
}
my $secs = time - $t0;
my $n = rounds() - $before;
diag(sprintf '%d jobs in %.1f s: %d slot map rounds', $jobs, $secs, $n);
is($answered, $jobs, 'every job answered');
ok($jobs > 20, 'steady traffic') or diag("only $jobs jobs");

# per worker: one round per 500 ms, the first at once, and the re-asks of
# a contradicting seed (100 ms, 200 ms, ... apart: 7 in 3 s), with room
# for a slow machine (the code before: thousands)
my $most = $workers * (int($secs / 0.5) + 2 + 12);
ok($n <= $most, "at most $most rounds (got $n)");

# agreed again: $pa takes the slot back (its keys are there)
$cl->ok_cmd($pa, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $cl->node_id($pa));
$cl->wait_ok(scaled(30));
ok(wait_until(sub { http('POST', "/jobs/$q", '{}')->{status} == 200 },
    scaled(10), 'jobs go through'), 'jobs go through again');

done_testing();
