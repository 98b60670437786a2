#!/usr/bin/perl
# The sidecar on a Redis Cluster (redis cluster://seeds), alone: a real
# 3-master cluster, two queues whose slots are on different masters.
# Jobs are XADDed to each queue's master, answered on a sharded reply
# channel (SPUBLISH: SSUBSCRIBEd on that master) or a plain one (PUBLISH),
# their results stored on that master; the node document is on the
# control shard (the master of the {ctl} slot) and lists both queues.
# A sharded reply channel of another slot than its queue's is PUBLISHed
# without failing its batch.  Then one queue's slot moves to another
# master while jobs are submitted (each to whichever master owns the
# slot, following MOVED and ASK as a cluster client does), held MIGRATING
# 2 s while the queue's workers complete jobs: every job is answered
# exactly once and run once (its worker's log), none lost, the workers
# back off while redirected, and none reads on the old master after.
# A reload that adds a queue, or changes the seeds, is refused saying so.
# Last, SIGKILL of the master that then serves both queues: once the
# cluster promoted its replica, jobs submitted there are answered again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use OffloadTest;
use ClusterTopology;

my $topo = start_cluster_topology(masters => 3, replicas => 1);
my @masters = $topo->master_ports;
is(scalar @masters, 3, 'a cluster of 3 masters, a replica each');

# two queues on two different masters
my $qa = $topo->queue_on($masters[0], map { "cq$_" } 0 .. 999);
my $qb = $topo->queue_on($masters[1], map { "cq$_" } 0 .. 999);
my ($pa, $pb) = ($topo->owner_port($qa), $topo->owner_port($qb));
my $control = $topo->owner_port('offload:{ctl}:nodes');
diag("queue $qa on $pa, $qb on $pb, the control shard on $control");

redis_use($control);
start_sidecar(redis => $topo->url, level => 'debug',
    conf => "redis_timeout 1s;\n"
        . "queue $qa { handler sleep; workers 2; }\n"
        . "queue $qb { handler echo; workers 2; }\n");
is(redis_cmd_at($control, 'EXISTS', 'offload:{ctl}:node:' . node_name()), 1,
    'the sidecar registered on the control shard');

my $doc = node_doc();
is_deeply([ sort keys %{ $doc->{queues} } ], [ sort $qa, $qb ],
    'one node document on the control shard lists both queues');

my $n = 0;
my $nonce = sprintf '%016x', $$ * 7919 + int(time);

sub new_id { sprintf '%016x%016x', $$, ++$n }

# A subscriber process: SUBSCRIBE (or SSUBSCRIBE) to $channel on $port,
# each message's job id a line of $file.  Returns its pid once the
# subscription is confirmed (a line "subscribed").
sub subscriber {
    my ($port, $cmd, $channel, $file) = @_;
    unlink $file;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp') or POSIX::_exit(1);
        open my $out, '>>', $file or POSIX::_exit(1);
        $out->autoflush(1);
        syswrite $s, "*2\r\n\$" . length($cmd) . "\r\n$cmd\r\n\$"
            . length($channel) . "\r\n$channel\r\n";
        my $buf = '';
        while (1) {
            my $m = eval { OffloadTest::resp_read($s, \$buf) };
            POSIX::_exit(0) unless defined $m;
            next unless ref $m eq 'ARRAY';
            if ($m->[0] =~ /^s?subscribe$/) {
                print $out "subscribed\n";
            } elsif ($m->[0] =~ /^s?message$/ && $m->[2] =~ /^OR\d+ (\S+)/) {
                print $out "$1\n";
            } else {
                print $out "other $m->[0]\n";
            }
        }
    }
    wait_until(sub { -e $file && slurp($file) =~ /^subscribed$/m },
        scaled(5), "$cmd $channel on $port") or die "no subscription\n";
    return $pid;
}

sub heard {
    my ($file) = @_;
    my %ids;
    $ids{$_}++ for grep { /^[0-9a-f]{32}$/ } split /\n/, slurp($file);
    return \%ids;
}

# XADDs a job for $queue to $port, following MOVED (to the named master)
# and ASK (ASKING then the XADD there), as a cluster client does.  Returns
# the port that took it, or undef.
sub submit {
    my ($queue, $port, $id, $channel) = @_;
    # $qa's jobs sleep 200 ms: its 2 workers are busy when its slot starts
    # migrating, and complete those jobs during the migration
    my $payload = $queue eq $qa ? qq({"ms":200,"id":"$id"})
                                : qq({"id":"$id"});
    my @xadd = ('XADD', "offload:{$queue}:jobs", 'NOMKSTREAM', '*',
        v => 1, id => $id, payload => $payload, reply => $channel,
        deadline => int(time * 1000) + 60_000);
    for (1 .. 5) {
        my $r = eval { redis_cmd_at($port, @xadd) };
        return $port if defined $r && !ref $r;
        my $err = ref $r eq 'HASH' ? $r->{error} : $@ || 'nil';
        if ($err =~ /^MOVED \d+ [\d.]+:(\d+)/) {
            $port = $1;
        } elsif ($err =~ /^ASK \d+ [\d.]+:(\d+)/) {
            redis_use($1);
            my @r = eval { redis_cmds(['ASKING'], \@xadd) };
            redis_use($control);
            return $1 if defined $r[1] && !ref $r[1];
        } elsif ($err =~ /^TRYAGAIN/) {
            sleep 0.05;
        } else {
            diag("XADD to $port: $err");
            return undef;
        }
    }
    return undef;
}

# Clients of $port whose last command is a stream read (a worker's).
sub readers {
    my ($port) = @_;
    my $list = redis_cmd_at($port, 'CLIENT', 'LIST');
    return scalar grep { /\bcmd=(xreadgroup|evalsha|exec)\b/ }
        split /\n/, $list;
}

sub result_at {
    my ($port, $queue, $id) = @_;
    my $r = eval { redis_cmd_at($port, 'GET', "offload:{$queue}:result:$id") };
    return defined $r && !ref $r ? $r : undef;
}

# ---- jobs on each queue's master, answered on its sharded channel
my $dir = tmpdir();
my %subs;
for my $q ([ $qa, $pa ], [ $qb, $pb ]) {
    my ($queue, $port) = @$q;
    my $channel = "offload:{$queue}:reply:$nonce";
    my $file = "$dir/heard-$queue";
    my $sub = subscriber($port, 'SSUBSCRIBE', $channel, $file);
    my @ids = map { new_id() } 1 .. 5;
    is(scalar(grep { (submit($queue, $port, $_, $channel) // 0) == $port }
        @ids), 5, "queue $queue: 5 jobs XADDed to its master $port");
    ok(wait_until(sub { keys %{ heard($file) } == 5 }, scaled(10),
        "replies on $channel"), "queue $queue: each answered on its "
        . 'sharded channel (SPUBLISH on its master)')
        or diag(slurp($file));
    my $res = result_at($port, $queue, $ids[0]);
    my $out = $queue eq $qa ? qr/\{"ms":\d+\}/ : qr/\{"id":"$ids[0]"\}/;
    like($res // '', qr/^OR1 $ids[0] 200 .*\n$out$/s,
        "queue $queue: the result stored on its master");
    kill 'TERM', $sub;
    waitpid $sub, 0;
}

# a plain channel: PUBLISH, heard on any node of the cluster
my $plain = "offload:reply:$nonce";
my $pfile = "$dir/heard-plain";
my $psub = subscriber($pb, 'SUBSCRIBE', $plain, $pfile);
my $pid1 = new_id();
is(submit($qa, $pa, $pid1, $plain), $pa, 'a job with a plain channel');
ok(wait_until(sub { heard($pfile)->{$pid1} }, scaled(10), 'plain reply'),
    'a plain channel is PUBLISHed (heard on another master)');

# a sharded channel of another slot (another master's) than its queue's:
# the SPUBLISH is refused there, the reply PUBLISHed instead, and the jobs
# completed with it in one call are acked all the same
my $cross = "offload:{$qa}:reply:$nonce";
my $xfile = "$dir/heard-cross";
my $xsub = subscriber($pb, 'SUBSCRIBE', $cross, $xfile);
my @xids = map { new_id() } 1 .. 6;
is(scalar(grep { submit($qb, $pb, $_, $_ eq $xids[2] ? $cross : $plain) }
    @xids), 6, "6 jobs on $qb, one with a channel in $qa\'s slot");
ok(wait_until(sub {
    my $h = heard($pfile);
    heard($xfile)->{ $xids[2] } && !grep { !$h->{$_} } @xids[0, 1, 3 .. 5];
}, scaled(10), 'replies'), 'each answered, the cross-slot one by PUBLISH');
ok(wait_until(sub {
    my $p = redis_cmd_at($pb, 'XPENDING', "offload:{$qb}:jobs",
        'workers');
    ref $p eq 'ARRAY' && $p->[0] == 0;
}, scaled(10), 'acked'), "no entry left pending on $qb");
kill 'TERM', $xsub;
waitpid $xsub, 0;

my $monitor = redis_cmd_at($pa, 'INFO', 'commandstats');
like($monitor, qr/^cmdstat_spublish:calls=\d+/m,
    "SPUBLISH ran on $qa\'s master");

# queue stats, read on each queue's own master, in the one document
ok(wait_until(sub {
    my $d = node_doc() or return 0;
    defined $d->{queues}{$qa}{backlog} && defined $d->{queues}{$qb}{backlog};
}, scaled(10), 'queue stats in the document'),
    'each queue\'s stats come from its own master');

# ---- the slot of $qa moves to another master while jobs are submitted
my $slot = $topo->slot_of($qa);
my $to = $pb;
my $total = 60;
my $idfile = "$dir/submitted";
unlink $idfile;
my $submitter = fork // die "fork: $!";
if ($submitter == 0) {
    # jobs for about 3 s, each to the master that last took one
    open my $out, '>>', $idfile or POSIX::_exit(1);
    $out->autoflush(1);
    my $port = $pa;
    for my $i (1 .. $total) {
        my $id = sprintf '%016x%016x', $$, 1000 + $i;
        my $took = submit($qa, $port, $id, $plain);
        print $out defined $took ? "$id $took\n" : "$id lost\n";
        $port = $took // $port;
        sleep 0.05;
    }
    POSIX::_exit(0);
}
sleep 0.5;
# MIGRATING for 2 s before its keys move: the completions of the jobs
# run meanwhile (the stream on the source, their result keys nowhere)
# are answered TRYAGAIN
my $log0 = length slurp("$dir/sidecar.log");
$topo->move_slot($slot, $to, hold => 2);
is($topo->slot_owner($slot), $to, "slot $slot of $qa moved from $pa to $to "
    . 'under load');
# 2 workers, each reconnecting after every redirect: with a growing
# backoff (0.1, 0.2, 0.4, 0.8 s...) a handful each, not 10 a second
my $reconnects = () = substr(slurp("$dir/sidecar.log"), $log0)
    =~ /worker \Q$qa\E:\d+: connected to redis/g;
cmp_ok($reconnects, '<=', 16, 'the workers\' reconnects back off under '
    . "redirects ($reconnects in the 2 s)");
waitpid $submitter, 0;
is($? >> 8, 0, 'the submitter ran to its end');

my @sent = map { [ split ' ' ] } split /\n/, slurp($idfile);
is(scalar @sent, $total, "$total jobs submitted");
is(scalar(grep { $_->[1] eq 'lost' } @sent), 0, 'every XADD taken');
ok((grep { $_->[1] == $to } @sent) > 0,
    'jobs were taken by the new owner after the move');

ok(wait_until(sub {
    my $h = heard($pfile);
    !grep { !$h->{ $_->[0] } } @sent;
}, scaled(20), 'every job answered'), 'every job answered, none lost')
    or diag('unanswered: ' . join ' ', map { $_->[0] }
        grep { !heard($pfile)->{ $_->[0] } } @sent);
my $h = heard($pfile);
is(scalar(grep { ($h->{ $_->[0] } // 0) != 1 } @sent), 0,
    'every job answered exactly once');
# each job's handler ran once: a worker logs each job it starts
my %runs;
my $log = slurp("$dir/sidecar.log");
$runs{$1}++ while $log =~ /worker \Q$qa\E:\d+: job from entry (\S+),/g;
my @again = grep { $runs{$_} > 1 } sort keys %runs;
is(scalar @again, 0, "every job of $qa ran once ("
    . scalar(keys %runs) . ' entries run)')
    or diag('run again: ' . join ' ', map { "$_ x$runs{$_}" } @again);
cmp_ok(scalar(keys %runs), '>=', $total, "all $total jobs of the move ran");
ok(!grep({ !defined result_at($to, $qa, $_->[0]) } @sent),
    'every result stored on the new owner');

# after the move, sharded replies come from the new owner
my $channel = "offload:{$qa}:reply:$nonce";
my $sfile = "$dir/heard-moved";
my $ssub = subscriber($to, 'SSUBSCRIBE', $channel, $sfile);
my $late = new_id();
is(submit($qa, $to, $late, $channel), $to, 'a job to the new owner');
ok(wait_until(sub { heard($sfile)->{$late} }, scaled(10), 'sharded reply'),
    'answered on the sharded channel on the new owner');
kill 'TERM', $ssub;
waitpid $ssub, 0;

like(slurp("$dir/sidecar.log"), qr/MOVED|ASK|TRYAGAIN/,
    'the sidecar logged the redirection');
# the workers of $qa left its old master: no worker reads a stream there
ok(wait_until(sub { readers($pa) == 0 && readers($to) == 4 }, scaled(10),
    'workers reconnected'), "no worker reads on $pa any more, 4 on $to")
    or diag("readers: $pa " . readers($pa) . ", $to " . readers($to));

# ---- offloadctl: node documents on the control shard, each queue's
# commands on its master
my $ctl = build_path('offloadctl');
my $url = $topo->url;
my $node = node_name();
my $out = `$ctl -r $url status 2>&1`;
is($? >> 8, 0, 'offloadctl -r cluster://... status: exit 0') or diag($out);
like($out, qr/^\Q$node\E /m, 'it shows the node (control shard)');
$out = `$ctl -c ${\ sidecar_conf_file()} queues 2>&1`;
is($? >> 8, 0, 'offloadctl -c <cluster config> queues: exit 0')
    or diag($out);
like($out, qr/^\Q$qa\E\s+ok\s+2\s/m, "it lists $qa");
like($out, qr/^\Q$qb\E\s+ok\s+2\s/m, "it lists $qb");

my $dead = 'd' x 32;
my $now = int(time * 1000);
redis_cmd_at($pb, 'XADD', "offload:{$qb}:dead", '*', v => 1, id => $dead,
    payload => '{"again":true}', deadline => $now + 30000,
    submitted => $now, attempt => 2, rid => '', reason => 'signal',
    dead_at => $now);
$out = `$ctl -r $url dead $qb 2>&1`;
is($? >> 8, 0, "offloadctl dead $qb: exit 0") or diag($out);
like($out, qr/\Q$dead\E/, "it reads $qb\'s dead letters on its master");
$out = `$ctl -r $url retry $qb $dead 2>&1`;
like($out, qr/retried 1 dead letter/, "offloadctl retry $qb") or diag($out);
ok(wait_until(sub { defined result_at($pb, $qb, $dead) }, scaled(5),
    'retried result'), 'the retried job ran on its master');
$out = `$ctl -r $url submit $qb '{"via":"ctl"}' --wait --timeout 2s 2>&1`;
is($? >> 8, 0, "offloadctl submit $qb --wait: exit 0") or diag($out);
like($out, qr/"via":\s*"ctl"/, 'answered');

# drain and resume: the flag on the control shard, read by the supervisor
# there, pauses the workers of both queues
$out = `$ctl -r $url drain -t ${\ scaled(10)} $node 2>&1`;
like($out, qr/node \Q$node\E drained: 4 workers paused/,
    'offloadctl drain: the node\'s 4 workers pause') or diag($out);
ok(node_doc()->{drained}, 'the document on the control shard says drained');
$out = `$ctl -r $url resume -t ${\ scaled(10)} $node 2>&1`;
is($? >> 8, 0, 'offloadctl resume: exit 0') or diag($out);
ok(wait_until(sub { !node_doc()->{drained} }, scaled(5), 'resumed'),
    'resumed');

# a reload that adds a queue is refused with a cluster (its slot has no
# connection yet); the running queues go on
my $conf = slurp(sidecar_conf_file());
spew(sidecar_conf_file(), $conf . "queue cq-new { handler echo; }\n");
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload_failed') } == 1 }, scaled(10),
    'reload_failed event'), 'a reload adding a queue: reload_failed event');
like(events('reload_failed')->[0]{report}{error},
    qr/a new queue on a Redis Cluster needs a restart/, 'saying why');
# one where a running queue's seeds changed: that is what it says
my $url2 = $topo->url;
$url2 =~ s/,[^,]+$//;
(my $fewer = $conf) =~ s/^redis \S+;/redis $url2;/m;
spew(sidecar_conf_file(), $fewer);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload_failed') } == 2 }, scaled(10),
    'reload_failed event'), 'a reload changing the seeds: reload_failed');
like(events('reload_failed')->[-1]{report}{error},
    qr/queue cq\d+: its Redis Cluster seeds or login .*changed/,
    'saying that the seeds changed');
spew(sidecar_conf_file(), $conf);
my $after = new_id();
is(submit($qa, $topo->owner_port($qa), $after, $plain),
    $topo->owner_port($qa), 'a job after the refused reload');
ok(wait_until(sub { heard($pfile)->{$after} }, scaled(10), 'answered'),
    'answered by the running configuration');
kill 'TERM', $psub;
waitpid $psub, 0;

# ---- SIGKILL of the master serving both queues now
my $fsub = subscriber($masters[0], 'SUBSCRIBE', $plain, "$dir/heard-failover");
my $t0 = time;
$topo->kill_node($to);
my $new = $topo->wait_owner_change($slot, $to, scaled(30));
ok($new, "the cluster promoted $to\'s replica");
my $promoted = time;
my %ids;
ok(wait_until(sub {
    for my $q (grep { !$ids{$_} } $qa, $qb) {
        my $id = new_id();
        $ids{$q} = $id if submit($q, $new, $id, $plain);
    }
    keys %ids == 2;
}, scaled(10), 'jobs taken'), 'a job for each queue taken by the new master');
ok(wait_until(sub {
    my $h = heard("$dir/heard-failover");
    !grep { !$h->{$_} } values %ids;
}, scaled(20), 'jobs answered after the failover'),
    'both queues answered again on the promoted replica');
diag(sprintf 'failover: replica promoted after %.2f s, jobs answered again '
    . 'after %.2f s', $promoted - $t0, time - $t0);
ok(wait_until(sub { defined result_at($new, $qa, $ids{$qa} // '') },
    scaled(5), 'result'), 'the result stored on the new master');
kill 'TERM', $fsub;
waitpid $fsub, 0;

finish();
