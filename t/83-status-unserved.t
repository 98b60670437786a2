#!/usr/bin/perl
# A queue whose every node is gone stays in status, metrics and offloadctl,
# "unserved", its figures read from its stream: its jobs wait for nobody,
# which an operator must see most of all (an alert on its backlog, on its
# oldest job's age, or on offload_queue_nodes == 0).  They used to vanish
# with the queue's last node.  The stamps behind this are forgotten after a
# week.  One whose every node is drained is
# "drained", and offload_queue_nodes counts only the nodes that take its
# jobs.  A queue no node served for a week, or whose
# stream is gone, is not listed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $conf = <<'CONF';
queue sleep { handler sleep; workers 1; }
queue echo { handler echo; workers 1; }
CONF

start_redis();
start_sidecar(conf => $conf);
start_async_nginx(server => "location = /metrics { offload_metrics; }\n"
    . "location = /status { offload_status; }\n");

my $ctl = build_path('offloadctl') . ' -r 127.0.0.1:' . redis_port();

sub metric {
    my ($name, $queue) = @_;
    my $text = http('GET', '/metrics')->{content} // '';
    return $text =~ /^\Q$name\E\{queue="\Q$queue\E"\} (\S+)$/m ? $1 : undef;
}
sub queue_status { http('GET', '/status')->{json}{queues}{ $_[0] } // {} }

ok(wait_until(sub { (metric('offload_queue_nodes', 'sleep') // -1) == 1 },
    scaled(5), 'served'), 'a served queue: offload_queue_nodes 1');
is(queue_status('sleep')->{state}, 'ok', 'its state: ok');

# ---- its only node drained: nobody takes its jobs (nginx answers 503)
my $drain = 'offload:{ctl}:drain:' . node_name();
redis_cmd('SET', $drain, 1);
ok(wait_until(sub { (metric('offload_queue_nodes', 'sleep') // -1) == 0
                    && queue_status('sleep')->{state} eq 'drained' },
    scaled(10), 'drained'), 'its node drained: state drained, '
    . 'offload_queue_nodes 0');
is(queue_status('sleep')->{nodes}, 1, 'the node still listed in nodes');
redis_cmd('DEL', $drain);
ok(wait_until(sub { (metric('offload_queue_nodes', 'sleep') // -1) == 1
                    && queue_status('sleep')->{state} eq 'ok' },
    scaled(10), 'resumed'), 'resumed: ok, offload_queue_nodes 1');

# ---- every node gone, jobs waiting
is(stop_sidecar(), 0, 'the only node stops');
for (1 .. 3) {
    like(`$ctl submit sleep '{"ms":1}'`, qr/^\w{32}$/, 'a job submitted');
}
ok(wait_until(sub { (metric('offload_queue_backlog', 'sleep') // -1) == 3 },
    scaled(10), 'backlog seen'), 'offload_queue_backlog: the 3 jobs waiting');
is(metric('offload_queue_nodes', 'sleep'), 0, 'offload_queue_nodes 0');
ok(wait_until(sub { (metric('offload_queue_oldest_seconds', 'sleep') // 0)
    > 0 }, scaled(5), 'oldest'), 'offload_queue_oldest_seconds of the oldest');
is(metric('offload_queue_nodes', 'echo'), 0, 'the idle queue is listed too');
my $q = queue_status('sleep');
is($q->{state}, 'unserved', 'status: state unserved');
is_deeply([ @$q{qw(workers nodes backlog pending)} ], [ 0, 0, 3, 0 ],
    'no workers, no nodes, 3 waiting, none running');
ok(defined $q->{unserved_ms} && $q->{unserved_ms} >= 0,
    'unserved_ms: since when no node serves it');
my $out = `$ctl queues`;
like($out, qr/^sleep\s+unserved\s+0\s+3\s/m, 'offloadctl queues: unserved');
my ($head, @rows) = split /\n/, $out;
my $end = index($head, 'WORKERS') + length('WORKERS') - 1;
ok(!grep({ substr($_, $end, 2) !~ /^\S / } @rows),
    'in its columns (WORKERS, after the wider state, aligned)');

# a job waited for: the wait that runs out says what became of the job
$out = `$ctl submit --wait --timeout 200ms sleep '{"ms":1}' 2>&1`;
is($? >> 8, 1, 'submit --wait to the unserved queue: exit 1 at its timeout');
my $unrun = "the job's deadline passed with the wait: if no worker took "
    . 'it, it is not run';
like($out, qr/no result .* within 200 ms\n.*\Q$unrun\E/,
    'saying it expired unrun');
$out = `$ctl submit --wait --timeout 200ms --deadline 1m sleep '{}' 2>&1`;
my $waits = 'the job may still wait in the queue: `offloadctl queues` '
    . 'tells whether a node serves sleep';
like($out, qr/\Q$waits\E .*`offloadctl result sleep \w{32}`/,
    'with a longer deadline: that it may still wait, and run');

# ---- forgotten: served a week ago, or its stream gone
my $week_ago = (redis_cmd('TIME')->[0] - 8 * 86400) * 1000;
redis_cmd('XGROUP', 'CREATE', 'offload:{old}:jobs', 'workers', '$',
    'MKSTREAM');
redis_cmd('HSET', 'offload:{ctl}:queues', 'old', $week_ago,
    'gone', $week_ago + 8 * 86400 * 1000, 'odd', 'not a time');
redis_cmd('XGROUP', 'CREATE', 'offload:{odd}:jobs', 'workers', '$',
    'MKSTREAM');
# one stamped now, with a stream: the answer that lists it is read after
# the stamps above
redis_cmd('XGROUP', 'CREATE', 'offload:{fresh}:jobs', 'workers', '$',
    'MKSTREAM');
redis_cmd('HSET', 'offload:{ctl}:queues', 'fresh', $week_ago
    + 8 * 86400 * 1000);
my $listed = {};
ok(wait_until(sub {
    $listed = http('GET', '/status')->{json}{queues} // {};
    $listed->{fresh} }, scaled(5), 'fresh listed'),
    'a queue stamped now, its stream there: listed');
ok(!$listed->{old} && !$listed->{gone} && !$listed->{odd},
    'in that answer, not one last served 8 days ago, one without a stream '
    . 'nor one with a malformed time');

# a node whose document is malformed lists its queues all the same: they
# are not unserved (a false critical alert)
redis_cmd('SET', 'offload:{ctl}:node:odd-node',
    '{"node":"odd-node","queues":{"fresh":{"backlog":"many"}}}');
redis_cmd('SADD', 'offload:{ctl}:nodes', 'odd-node');
my $status = {};
ok(wait_until(sub { $status = http('GET', '/status')->{json} // {};
    grep { ($_->{node} // '') eq 'odd-node' } @{ $status->{malformed_nodes}
                                                 || [] } },
    scaled(5), 'malformed seen'), 'a malformed document, listing fresh');
ok(!$status->{queues}{fresh}, 'in that answer fresh is not unserved');
redis_cmd('DEL', 'offload:{ctl}:node:odd-node');
redis_cmd('SREM', 'offload:{ctl}:nodes', 'odd-node');

# the hash replaced by another program's string: the queues it listed go,
# the rest of the status stays
redis_cmd('DEL', 'offload:{ctl}:queues');
redis_cmd('SET', 'offload:{ctl}:queues', 'not a hash');
ok(wait_until(sub { $status = http('GET', '/status')->{json} // {};
    ($status->{redis} // '') eq 'ok' && $status->{queues}
        && !$status->{queues}{fresh} }, scaled(5), 'wrong type'),
    'offload:{ctl}:queues of another type: the status answers, without '
    . 'the queues it listed');
redis_cmd('DEL', 'offload:{ctl}:queues');

# ---- a node serves it again
start_sidecar(conf => $conf);
ok(wait_until(sub { (metric('offload_queue_backlog', 'sleep') // -1) == 0
                    && queue_status('sleep')->{state} eq 'ok' }, scaled(10),
    'served again'), 'a node back: the jobs run, the queue is ok again');
is(metric('offload_queue_nodes', 'sleep'), 1, 'offload_queue_nodes 1');
ok(!exists queue_status('sleep')->{unserved_ms}, 'no unserved_ms');

# ---- stamps nobody wrote for a week are forgotten by the next heartbeat,
# not kept for every queue name ever served
redis_cmd('HSET', 'offload:{ctl}:queues', 'old', $week_ago,
    'odd', 'not a time', 'recent', $week_ago + 2 * 86400 * 1000);
ok(wait_until(sub {
    !redis_cmd('HEXISTS', 'offload:{ctl}:queues', 'old')
        && !redis_cmd('HEXISTS', 'offload:{ctl}:queues', 'odd') },
    scaled(5), 'old stamps forgotten'),
    'the stamps of 8 days ago and the malformed one are forgotten');
ok(redis_cmd('HEXISTS', 'offload:{ctl}:queues', 'recent'),
    'one of 6 days ago is kept');
ok(redis_cmd('HEXISTS', 'offload:{ctl}:queues', 'sleep'),
    'the served queue is stamped');
finish();
