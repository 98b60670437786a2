#!/usr/bin/perl
# A worker on Redis Sentinel running jobs longer than redis_timeout back to
# back keeps watching its sentinel: its loop stands still while a job
# runs, so the sentinel's answer to the watch's PING waits unread in the
# socket when the job ends; the watch must find it there (as the master
# connection's watchdog does) and not take the sentinel for silent
# ("did not answer in ... watching the next one").

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use SentinelTopology;

my $topo = start_sentinel_topology(name => 'offload');
redis_use($topo->master_port);

my $jobs = 8;
my $ms = 1300;          # > redis_timeout, and over a watch tick (1 s)
start_sidecar(redis => 'sentinel://' . $topo->url,
    conf => "redis_timeout 1s;\n"
        . "queue sleep { handler sleep; workers 1; prefetch $jobs; }\n");

# queued while the node is drained, so that the worker reads them in one
# batch (prefetch) and runs them with no read of its own in between: the
# watch's PING sent after one job is answered during the next, every time
my $ctl = build_path('offloadctl');
my $redis = '127.0.0.1:' . $topo->master_port;
my $node = node_name();
my $out = `$ctl -r $redis drain -t 10 $node 2>&1`;
is($? >> 8, 0, 'the node drained') or diag($out);

my @ids;
for (1 .. $jobs) {
    my $id = `$ctl -r $redis submit sleep '{"ms":$ms}' 2>&1`;
    chomp $id;
    is($? >> 8, 0, "job $_ submitted") or diag($id);
    push @ids, $id;
}
$out = `$ctl -r $redis resume -t 10 $node 2>&1`;
is($? >> 8, 0, 'the node takes the jobs') or diag($out);

# the one worker runs them one after the other: 10 s, with room for a slow
# machine
my $done = wait_until(sub {
    !grep { system("$ctl -r $redis result sleep $_ >/dev/null 2>&1") != 0 }
        @ids;
}, scaled(20 + $jobs * $ms / 1000), 'every sleep job finished');
ok($done, "$jobs jobs of $ms ms ran back to back");

my $log = slurp(tmpdir() . '/sidecar.log');
my $dropped = () = $log =~ /sentinel \S+ did not answer in \d+ ms/g;
is($dropped, 0, 'the sentinel watch was kept through every job');

finish();
