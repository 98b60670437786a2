#!/usr/bin/perl
# nginx on a Redis Cluster whose nodes announce IPv6 addresses (::1): the
# slot map names them bare ("::1"), and so does a redirection: "MOVED
# <slot> ::1:<port>", whose port is after the last ':'.  A queue's slot is
# moved while nginx sends nothing to it, so nothing tells nginx: the next
# job's XADD meets the old master's MOVED and follows it to the new master
# over ::1, answered 200.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::IP;
use OffloadTest;
use ClusterTopology;

my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
    Listen => 1);
plan skip_all => 'no IPv6 loopback (::1)' unless $probe;
close $probe;

my $cl = start_cluster_topology(masters => 3,
    args => [ '--bind', '127.0.0.1 ::1', '--cluster-announce-ip', '::1' ]);
my @masters = $cl->master_ports;
my $slots = $cl->cmd($masters[0], 'CLUSTER', 'SLOTS');
is(ref $slots eq 'ARRAY' ? $slots->[0][2][0] : '', '::1',
    'the cluster names its nodes by ::1');
my $ctl = $cl->control_port;
my ($from, $to) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($from);
ok($qa && $qb, "queue $qa on $ctl, $qb on $from");

ok($cl->start_offload(echo => [ $qa, $qb ], level => 'info',
    server => <<'LOCATIONS'), "nginx answers on $qa");
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
LOCATIONS
like(slurp(nginx_error_log()), qr/master \[::1\]:$from\b/,
    'nginx knows the masters by ::1');

is($cl->move_slot($cl->slot_of($qb), $to), $from,
    "slot of $qb moved from $from to $to, nginx idle on it");
my $r = http('POST', "/jobs/$qb", '{"v6":1}');
is($r->{status}, 200, "the next job to $qb answered 200")
    or diag($r->{content});
is($r->{json}{v6} // 0, 1, 'with its own result');
like(slurp(nginx_error_log()),
    qr/: MOVED \d+ ::1:$to, sent to \[::1\]:$to\b/,
    'its XADD followed the unbracketed IPv6 MOVED')
    or diag(slurp(nginx_error_log()));

done_testing();
