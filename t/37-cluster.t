#!/usr/bin/perl
# nginx on a Redis Cluster (offload_redis cluster://seeds), sync jobs (async:
# t/37-cluster-async.t): a real
# three-master cluster (t/lib/ClusterTopology.pm) and a sidecar (redis
# cluster://seeds) serving queues whose slots live on different masters.
# Sync jobs on them are answered with their own results, each queue's
# XADDs went straight to its master (no redirection), replies come on each
# queue's sharded channel on its master, the status shows the node and the
# queues from the control shard, and a queue's slot moved to another master
# under a load of sync jobs loses none: every request is answered 200 with
# its own result (nginx follows ASK and MOVED on the jobs' XADDs, the
# sidecar its own way).  Then: a stale map followed on a big body's check,
# a reload, and a cluster down (503).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $dir = tmpdir();
my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
my $ctl = $cl->control_port;
my ($other, $third) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($other);
my $qc = $cl->queue_on($third);
ok($qa && $qb && $qc, "queue $qa on the control shard ($ctl), $qb on "
    . "$other, $qc on $third");

my $nobody = free_port();
ok($cl->start_offload(conf => "queue $qa { handler echo; workers 2; }\n"
        . "queue $qb { handler echo; workers 2; }\n"
        . "queue $qc { handler echo; }\n",
    level => 'info', ready => [ "/jobs/$qa", '{}' ],
    server => <<"LOCATIONS"), 'nginx answers through the cluster');
    client_max_body_size 8m;
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location = /status { offload_status; }
    location = /nowhere {
        offload_redis cluster://127.0.0.1:$nobody; offload_pass $qa;
    }
LOCATIONS
my $node = node_name();

# ---- no seed answers: no slot map, 503 at once, never a hang
my $r = http('POST', '/nowhere', '{}', undef, scaled(10));
is($r->{status}, 503, 'a cluster whose seeds are all down: 503');
is($r->{json}{error}{code}, 'redis_unavailable', 'redis_unavailable');
is($r->{headers}{'retry-after'}, 1, 'with Retry-After: 1');
ok($r->{ms} < 1000, sprintf('at once (%.0f ms)', $r->{ms}));

# ---- sync jobs on both queues, each with its own result
sub xadds {
    my ($port) = @_;
    my $info = $cl->cmd($port, 'INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_xadd:calls=(\d+)/m ? $1 : 0;
}
# a job sent again after a redirection (error log, info)
sub redirected {
    my @n = slurp(nginx_error_log()) =~ /: (?:MOVED|ASK) \d+ \S+, sent to /g;
    return scalar @n;
}
$cl->cmd($_, 'CONFIG', 'RESETSTAT') for @masters;
my $ok = 0;
for my $i (1 .. 40) {
    my $q = $i % 2 ? $qa : $qb;
    my $r = http('POST', "/jobs/$q", qq({"i":$i,"q":"$q"}));
    $ok++ if $r->{status} == 200 && ($r->{json}{i} // 0) == $i
        && ($r->{json}{q} // '') eq $q;
}
is($ok, 40, '40 sync jobs answered 200, 20 per queue, each its own result');
$r = http('POST', "/jobs/$qb", '{"one":1}');
is($r->{status}, 200, "one more on $qb: 200");
is($r->{json}{one}, 1, 'with the result');
is(redirected(), 0, 'every XADD went to its queue\'s master at once: no '
    . 'job redirected');
ok(xadds($ctl) >= 20 && xadds($other) == 21 && xadds($third) == 0,
    "XADDs: $qa\'s on $ctl, $qb\'s on $other, none on $third")
    or diag(join ' ', map { "$_: " . xadds($_) } @masters);
# the replies of a queue on its shard: each worker subscribed its
# queues' sharded channels on their masters (and only there)
sub shard_channels {
    my ($port, $q) = @_;
    my $ch = $cl->cmd($port, 'PUBSUB', 'SHARDCHANNELS', "offload:{$q}:reply:*");
    return ref $ch eq 'ARRAY' ? scalar @$ch : -1;
}
ok(shard_channels($ctl, $qa) >= 1 && shard_channels($other, $qb) >= 1,
    "sharded reply channels: $qa\'s on $ctl, $qb\'s on $other");
is(shard_channels($ctl, $qb) + shard_channels($third, $qb)
    + shard_channels($other, $qa) + shard_channels($third, $qa), 0,
    'and none elsewhere');
$r = http('POST', '/jobs/nobody', '{}');
is($r->{status}, 404, 'a queue nobody serves: 404');
is(shard_channels($cl->owner_port('nobody'), 'nobody'), 0,
    'and no sharded channel subscribed for it');
is($cl->cmd($ctl, 'EXISTS', "offload:{$qa}:jobs"), 1,
    "$qa\'s stream is on the control shard");
is($cl->cmd($other, 'EXISTS', "offload:{$qb}:jobs"), 1,
    "$qb\'s stream is on $other");

# ---- a big body (into its body key on the bulk link) and its big result
my $big = 'x' x (2 * 1024 * 1024);
$r = http('POST', "/jobs/$qb", qq({"big":"$big"}));
is($r->{status}, 200, "a 2 MB job on $qb answered 200");
is(length($r->{content} // ''), length($big) + 10, 'with its whole result');

# ---- the status: this nginx's counters of both, the node from the
# control shard
my $s;
ok(wait_until(sub {
    $s = http('GET', '/status')->{json};
    $s && grep { ($_->{node} // '') eq $node } @{ $s->{nodes} || [] };
}, scaled(10), 'the node in the status'), 'offload_status lists the node')
    or diag(explain($s));
ok(($s->{nginx}{queues}{$qa}{requests}{200} // 0) >= 20
    && ($s->{nginx}{queues}{$qb}{requests}{200} // 0) == 22,
    'and counts the answers of both queues');
ok($s->{queues}{$qa} && $s->{queues}{$qb},
    "and queues $qa and $qb from the node's document")
    or diag(explain($s->{queues}));
is(($s->{redises}[0] // {})->{state}, 'ok', 'the cluster reads as ok');

# ---- qb's slot moved to another master under a load of sync jobs
my $slot = $cl->slot_of($qb);
my ($results, $done) = ("$dir/load.json", "$dir/load.done");
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    # rounds of 6 connections x 20 jobs until the parent says done
    my @r;
    for (my $round = 0; !-e $done || $round < 2; $round++) {
        push @r, map { { %$_, round => $round } } concurrent_posts(6, 20,
            sub { qq({"r":$round,"c":$_[0],"j":$_[1]}) },
            path => "/jobs/$qb", timeout => scaled(60));
    }
    spew($results, json_encode([ map { {
        round => $_->{round}, conn => $_->{conn}, job => $_->{job},
        status => $_->{status},
        content => $_->{content} // $_->{error} // '' } } @r ]));
    POSIX::_exit(0);
}
ok(wait_until(sub {
    (http('GET', '/status')->{json}{nginx}{queues}{$qb}{requests}{200}
     // 0) >= 22 + 30;
}, scaled(20), 'load under way'), 'the load runs');
is($cl->move_slot($slot, $third), $other, "slot $slot ($qb) moved from "
    . "$other to $third under load");
my $moved_at = http('GET', '/status')->{json}{nginx}{queues}{$qb}{requests}
    {200} // 0;
ok(wait_until(sub {
    (http('GET', '/status')->{json}{nginx}{queues}{$qb}{requests}{200}
     // 0) >= $moved_at + 60;
}, scaled(30), 'load after the move'), 'the load goes on after the move');
spew($done, '');
waitpid($pid, 0);
my $got = json_decode(slurp($results)) || [];
ok(@$got >= 2 * 120 && @$got % 120 == 0, scalar(@$got) . ' requests of '
    . 'the load answered, all of every round');
my @bad = grep {
    my $j = json_decode($_->{content});
    $_->{status} != 200 || !$j || $j->{r} != $_->{round}
        || $j->{c} != $_->{conn} || $j->{j} != $_->{job}
} @$got;
is(scalar @bad, 0, 'each 200 with its own result, none lost')
    or diag(explain([ @bad[0 .. ($#bad < 4 ? $#bad : 4)] ]));
# how many XADDs met the old master's MOVED/ASK depends on timing (the
# jobs' result looks go to the map's master of their queue, not to the
# master their XADD went to, so they meet none)
note(redirected() . ' redirections followed during the move');
is($cl->cmd($third, 'EXISTS', "offload:{$qb}:jobs"), 1,
    "$qb\'s stream is on $third now");
ok(wait_until(sub { shard_channels($third, $qb) >= 1 }, scaled(10),
    'sharded channel on the new master'), "$qb\'s sharded reply channel "
    . "is on $third now");
is(shard_channels($other, $qb), 0, "and no longer on $other");
$ok = 0;
for my $i (1 .. 10) {
    my $r = http('POST', "/jobs/$qb", qq({"after":$i}));
    $ok++ if $r->{status} == 200 && ($r->{json}{after} // 0) == $i;
}
is($ok, 10, "jobs after the move answered from $third");

# ---- the slot of a queue nginx sent nothing to moved while idle: nothing
# tells nginx (no sharded subscription of it ends), its map is stale, a
# big body's EXISTS is answered MOVED and followed
is($cl->move_slot($cl->slot_of($qc), $other), $third,
    "slot of $qc moved to $other");
my $before = redirected();
$r = http('POST', "/jobs/$qc", qq({"big":"$big"}));
is($r->{status}, 200, "a 2 MB job to $qc after the move answered 200");
is(length($r->{content} // ''), length($big) + 10, 'with its whole result');
is(redirected(), $before + 1, 'its check was redirected once to the new '
    . 'master') or diag(slurp(nginx_error_log()));

# ---- nginx reloaded: the old workers leave promptly (every master's
# links and the map's timers let them), the new ones learn the map anew
my @old = nginx_worker_pids();
my $t0 = time;
kill 'HUP', nginx_pid();
ok(wait_until(sub {
    my %old = map { $_ => 1 } @old;
    my @now = nginx_worker_pids();
    @now == 2 && !grep { $old{$_} } @now;
}, scaled(10), 'old workers replaced'), sprintf('reload: old workers gone '
    . 'in %.2f s', time - $t0));
ok(time - $t0 < scaled(3), 'promptly (no lingering timers)');
ok(wait_until(sub {
    !grep { http('POST', "/jobs/$_", '{}')->{status} != 200 } $qa, $qb, $qc
}, scaled(10), 'jobs after the reload'), 'the new workers answer on every '
    . 'queue');

# ---- a master dies with no replica to take over: the cluster is down,
# a job is answered 503 with Retry-After, nothing hangs
$cl->kill_node($third);
ok(wait_until(sub {
    ($cl->cmd($ctl, 'CLUSTER', 'INFO') // '') =~ /cluster_state:fail/
}, scaled(20), 'cluster down'), 'a master without a replica killed: the '
    . 'cluster is down');
$r = http('POST', "/jobs/$qa", '{}', undef, scaled(10));
is($r->{status}, 503, "a job to $qa (its master alive) answered 503");
is($r->{json}{error}{code}, 'redis_unavailable', 'redis_unavailable');
like($r->{json}{error}{message}, qr/cluster .*down/, 'the cluster is down')
    or diag($r->{content});
is($r->{headers}{'retry-after'}, 1, 'with Retry-After: 1');

done_testing();
