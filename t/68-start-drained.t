#!/usr/bin/perl
# A node restarted drained takes no job before it is resumed: OPERATIONS'
# rolling restart is drain, restart, resume, and the restarted node's
# workers read jobs once it held its name lease, which it took before its
# first heartbeat read the drain flag (up to prefetch jobs a worker ran
# meanwhile).  Staged with jobs waiting in the queue while the node is
# down and drained.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $conf = "queue echo { handler echo; workers 2; prefetch 8; }\n";

start_redis();
start_sidecar(conf => $conf);
my $node = node_name();
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl drain -t @{[ scaled(10) ]} $node 2>&1`;
is($? >> 8, 0, 'the node is drained') or diag($out);
is(stop_sidecar(), 0, 'and stopped: exit 0');

my @ids;
for my $i (1 .. 20) {
    my $id = `$ctl submit echo '{"i":$i}' 2>&1`;
    chomp $id;
    push @ids, $id;
}
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), 20,
    '20 jobs wait in the queue');

start_sidecar(conf => $conf);
ok(wait_until(sub { (node_doc() // {})->{drained} }, scaled(5),
    'the document says drained'), 'the restarted node says it is drained');
ok(!wait_until(sub { pending_jobs('echo') > 0 }, scaled(1), 'a held job'),
    'its workers hold no job');
my $results = sub {
    scalar grep { defined redis_cmd('GET', "offload:{echo}:result:$_") }
        @ids };
is($results->(), 0, 'and ran none');
# (the first run said it when drained: the restarted one says it again)
my @said = slurp(tmpdir() . '/sidecar.log')
    =~ /draining: workers take no new jobs/g;
is(scalar @said, 2, 'the restarted node\'s log says it is draining');

$out = `$ctl resume $node 2>&1`;
is($? >> 8, 0, 'resumed') or diag($out);
ok(wait_until(sub { $results->() == 20 }, scaled(10), 'results'),
    'then it runs all 20 jobs');

finish();
