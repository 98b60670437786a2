#!/usr/bin/perl
# A clean stop takes the node out of the registry for good, even while
# answers of its heartbeat are still on their way (a slow network, a busy
# Redis): such an answer arriving after the node's document was deleted
# does not write the document again, which nginx would read for its
# lifetime as a node still serving (jobs accepted for nobody instead of a
# 503 no_workers).  Staged with a proxy whose answers come 0.3 s late
# while heartbeats go every 0.1 s: at any time, answers of three are due.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use BlackholeProxy;
use RedisMonitor;

start_redis();
my $slow = BlackholeProxy->start(redis_port(), lag => 0.3);

start_sidecar(redis => '127.0.0.1:' . $slow->port, heartbeat => '100ms',
    conf => "queue echo { handler echo; workers 1; }\n");
my $node = node_name();
my @keys = ("offload:{ctl}:node:$node", "offload:{ctl}:lease:$node");
is(redis_cmd('EXISTS', @keys), 2, 'the node is registered, and leased');

my $mon = RedisMonitor->start;
is(stop_sidecar(), 0, 'the sidecar stops: exit 0');

ok($mon->wait_for(sub { $_[0][1] eq 'EVAL' && $_[0][3] eq '4'
    && ($_[0][4] // '') eq $keys[1] },
    scaled(5)), 'the node gave up its lease and document (one script)');
# the sidecar exited after its answer: whatever it sent had reached Redis
# by then (only answers are late); the monitor may lag a little
ok(!$mon->wait_for(sub { $_[0][1] eq 'SET' && $_[0][2] eq $keys[0] },
    scaled(0.5)),
    'no write of the node document after that');
is(redis_cmd('EXISTS', @keys), 0, 'its document and its lease are gone');
ok(!grep({ $_ eq $node } @{ redis_cmd('SMEMBERS', 'offload:{ctl}:nodes') }),
    'and its name from the set of nodes');

$slow->stop;
finish();
