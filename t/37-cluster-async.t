#!/usr/bin/perl
# nginx on a Redis Cluster, phase 2: async jobs.  A real three-master
# cluster (t/lib/ClusterTopology.pm) and a sidecar serving queues whose
# slots live on different masters.  An async job's id carries its queue's
# slot tag, so its record, offload:job:{<tag>}:<id>, is on its queue's
# master, and GET/DELETE /jobs/<id> find it from the id alone: async jobs
# answered 202 and polled until done on two queues on two masters, Prefer:
# respond-async, a long poll answered when its job ends, an Idempotency-Key
# sent twice names one job, DELETE of a queued job and of a running one
# (offload_cancel_running on: its worker killed through the queue's cancel
# list, on the queue's master), a big result (a list) read on its queue's
# master, and a GET after the job's slot moved to another master (MOVED
# followed: the record moved with its queue).
#
# Then async jobs submitted while their queue's slot moves between
# masters: the slot held MIGRATING on its source, then its keys moved,
# then given to the target.  The submit script declares every key it
# touches (the record, the stream, the idempotency key), so Redis answers
# it whole: ASK to the target once the keys moved, TRYAGAIN while some are
# on the source and some not (a new record is on neither).  Every submit
# is answered 202, or 503 with Retry-After, never 404 unknown_queue (the
# stream looked for on the target before it arrived), and every job
# answered 202 ends done.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my $ctl = $cl->control_port;
my ($other, $third) = $cl->other_masters;
my $qa = $cl->queue_on($other);
my $qb = $cl->queue_on($third);
my $qh = $cl->queue_on($third, map { "h$_" } 0 .. 99);
ok($qa && $qb && $qh, "queue $qa on $other, $qb and $qh (sleeps) on $third, "
    . "the control shard on $ctl");

ok($cl->start_offload(echo => [ $qa, $qb ],
    conf => "queue $qh { handler sleep; workers 1; }\n", level => 'info',
    ready => [ "/sync/$qa", '{}' ], server => <<"LOCATIONS"),
    offload_timeout 60s;
    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/async/([^/]+)\$ {
        offload_pass \$1;
        offload_mode async;
        client_max_body_size 4m;
    }
    location /jobs/ { offload_jobs; }
    location /stop/ { offload_jobs; offload_cancel_running on; }
LOCATIONS
    'nginx answers through the cluster');

sub job { http('GET', "/jobs/$_[0]") }
sub job_until {
    my ($id, $re) = @_;
    my $doc;
    wait_until(sub {
        $doc = job($id)->{json};
        $doc && ($doc->{status} // '') =~ $re;
    }, scaled(10), "job $id $re");
    return $doc // {};
}
sub record_on {
    my ($port, $id) = @_;
    return +{ @{ $cl->cmd($port, 'HGETALL', record_key($id)) || [] } };
}

# ---- async jobs on two queues on two masters: 202, then GET until done
my %port = ($qa => $other, $qb => $third, $qh => $third);
for my $q ($qa, $qb) {
    my $r = post_json("/async/$q", { q => $q });
    is($r->{status}, 202, "$q: 202 Accepted");
    my $id = $r->{json}{id} // '';
    like($id, qr/^[0-9a-f]{32}$/, "$q: a 32-hex id");
    is($cl->slot_of('{' . substr($id, 11, 5) . '}'), $cl->slot_of($q),
        "$q: the id's characters 12..16 are a tag of the queue's slot");
    is($r->{headers}{location}, "/jobs/$id", "$q: Location");
    is(record_on($port{$q}, $id)->{queue}, $q,
        "$q: its record is on the queue's master ($port{$q})");
    my $doc = job_until($id, qr/^done$/);
    is($doc->{status}, 'done', "$q: GET: done");
    is_deeply($doc->{result}, { q => $q }, "$q: GET: its result");
    is($doc->{queue}, $q, "$q: GET: its queue");
}

# ---- a big result, a list on its queue's master: GET reads it there, an
# element at a time on that master's bulk link
my $bigbody = '"' . ('c' x (3 * 2**20)) . '"';
my $r = http('POST', "/async/$qb", $bigbody);
is($r->{status}, 202, "a 3 MB job on $qb: 202");
my $bid = $r->{json}{id} // '';
my $bdoc = job_until($bid, qr/^done$/);
is($cl->cmd($third, 'TYPE', "offload:{$qb}:result:$bid"), 'list',
    "its result is a list on $qb\'s master");
ok(($bdoc->{result} // '') eq substr($bigbody, 1, -1),
    'GET: its 3 MB result, whole');

$r = http('POST', "/sync/$qb", '{"prefer":1}',
    { Prefer => 'respond-async' });
is($r->{status}, 202, 'Prefer: respond-async on a sync location: 202');
is($r->{headers}{'preference-applied'}, 'respond-async',
    'Preference-Applied: respond-async');
is(job_until($r->{json}{id} // '', qr/^done$/)->{result}{prefer}, 1,
    'and the job is done with its result');

# ---- a long poll answered when the job ends (not at its wait)
$r = post_json("/async/$qh", { ms => 1500 });
is($r->{status}, 202, "a 1.5 s job on $qh accepted");
my $slow = $r->{json}{id} // '';
my $t0 = time;
$r = http('GET', "/jobs/$slow?wait=20", undef, undef, scaled(30));
my $waited = time - $t0;
is($r->{status}, 200, 'the long poll answered 200');
is($r->{json}{status}, 'done', 'with the job done');
ok($waited >= 1 && $waited < 10, sprintf('when the job ended (%.2f s), not '
    . 'at its 20 s wait', $waited));
diag(sprintf 'long poll of a 1.5 s job on a cluster answered %.2f s after '
    . 'its submit', $waited);

# ---- an Idempotency-Key sent twice names one job
my $key = "k-$$";
my $first = http('POST', "/async/$qa", '{"once":1}',
    { 'Idempotency-Key' => $key });
my $again = http('POST', "/async/$qa", '{"once":1}',
    { 'Idempotency-Key' => $key });
is($first->{status}, 202, 'Idempotency-Key: the first submit 202');
is($again->{status}, 202, 'the same key again: 202');
ok($first->{json}{id} && ($again->{json}{id} // '') eq $first->{json}{id},
    'with the same job id');
like($cl->cmd($other, 'GET', "offload:{$qa}:idem:$key") // '',
    qr/^\Q$first->{json}{id}\E /, "the key's memory is on $qa\'s master");
$r = http('POST', "/async/$qa", '{"once":2}', { 'Idempotency-Key' => $key });
is($r->{status}, 422, 'the key with another body: 422');

# ---- DELETE of a queued job, and of a running one
$r = post_json("/async/$qh", { ms => 30_000 });
my $long = $r->{json}{id} // '';
is(job_until($long, qr/^running$/)->{status}, 'running',
    "a 30 s job runs on $qh\'s only worker");
sub worker { (node_doc() || {})->{queues}{$qh}{workers}[0] || {} }
ok(wait_until(sub { (worker()->{state} // '') eq 'busy' }, scaled(10),
    'busy'), 'its worker is busy');
my $pid = worker()->{pid};
$r = post_json("/async/$qh", { ms => 100 });
my $queued = $r->{json}{id} // '';
is(job($queued)->{json}{status}, 'queued', 'a second job waits, queued');
$r = http('DELETE', "/jobs/$queued");
is($r->{status}, 200, 'DELETE of the queued job: 200');
is($r->{json}{status}, 'cancelled', 'cancelled');
is(record_on($third, $queued)->{status}, 'cancelled',
    'its record on the queue\'s master says so');

$r = http('DELETE', "/jobs/$long");
is($r->{status}, 409, 'offload_cancel_running off: the running job 409');
$r = http('DELETE', "/stop/$long");
is($r->{status}, 200, 'offload_cancel_running on: 200');
is($r->{json}{status}, 'cancelled', 'cancelled');
ok(wait_until(sub { my $w = worker(); $w->{pid} && $w->{pid} != $pid },
    scaled(10), 'worker replaced'), "its worker (pid $pid) was killed and "
    . 'replaced');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job \Q$long\E cancelled while it ran, killing pid $pid/,
    'the sidecar says why');
is(record_on($third, $long)->{status}, 'cancelled', 'the record: cancelled');
is($cl->cmd($third, 'EXISTS', "offload:{$qh}:cancel:" . node_name()), 0,
    "the queue's cancel list (on its master, not the control shard) was "
    . 'taken');
ok(wait_until(sub { (worker()->{state} // '') eq 'idle' }, scaled(10),
    'idle'), 'the new worker is idle: the cancelled queued job never ran');
is(job($queued)->{json}{status}, 'cancelled', 'and still says cancelled');

# ---- the job's slot moved between its submit and its GET
$r = post_json("/async/$qb", { moved => 1 });
my $id = $r->{json}{id} // '';
is(job_until($id, qr/^done$/)->{status}, 'done', "a job on $qb done");
my $slot = $cl->slot_of($qb);
is($cl->move_slot($slot, $other), $third, "$qb\'s slot $slot moved from "
    . "$third to $other");
is($cl->cmd($third, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0,
    'the record left the old master with the queue\'s keys');
is(record_on($other, $id)->{queue}, $qb, 'and is on the new one');
$r = job($id);
is($r->{status}, 200, 'GET after the move: 200');
is($r->{json}{status}, 'done', 'done');
is_deeply($r->{json}{result}, { moved => 1 }, 'with its result');
$r = post_json("/async/$qb", { after => 1 });
is($r->{status}, 202, "a new job on $qb after the move: 202");
is(job_until($r->{json}{id} // '', qr/^done$/)->{result}{after}, 1,
    'done on the new master');

# nginx learnt that move from its sharded reply channel of qb leaving the
# old master; a queue it never submitted to has no such channel: a record
# of a job of queue qz (submitted by another nginx: made here as its submit
# script does, on its queue's master) whose slot moves, read with the old
# map, is answered MOVED and read again on the new master
sub crc16 {
    my $crc = 0;
    for my $c (unpack 'C*', $_[0]) {
        $crc ^= $c << 8;
        $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                             : ($crc << 1) & 0xffff for 1 .. 8;
    }
    return $crc;
}
my $qz = $cl->queue_on($third, map { "z$_" } 0 .. 99);
my $zslot = $cl->slot_of($qz);
my $tag;
for my $n (0 .. 0xfffff) {
    $tag = sprintf '%05x', $n;
    last if crc16($tag) % 16384 == $zslot;
}
my $fid = "feedfacefee${tag}00000000000000f1";
$cl->cmd($third, 'HSET', record_key($fid), queue => $qz, status => 'queued',
    attempts => 0, submitted_at => int(time * 1000));
is(job($fid)->{json}{status}, 'queued', "GET of a job of $qz (on $third)");
is($cl->move_slot($zslot, $ctl), $third, "$qz\'s slot $zslot moved to $ctl");
$r = job($fid);
is($r->{status}, 200, 'GET after the move: 200 at once');
is($r->{json}{queue}, $qz, 'the record, from the new master');
like(slurp(nginx_error_log()),
    qr/job \Q$fid\E read: MOVED $zslot 127\.0\.0\.1:$ctl, sent to /,
    'nginx followed MOVED to the new master');

# ---- async jobs submitted while $qa's slot moves from $other to $third:
# the move, in a child: MIGRATING held 3 s, then the keys, then the owner
submits_during_move($qa, $other, $third);

sub submits_during_move {
    my ($q, $from, $to) = @_;
    my $dir = tmpdir();
    my $slot = $cl->slot_of($q);
    my $mover = fork() // die "fork: $!";
    if ($mover == 0) {
        my $ok = eval { $cl->move_slot($slot, $to, hold => scaled(3)); 1 };
        spew("$dir/move.done", $ok ? 'ok' : "failed: $@");
        POSIX::_exit(0);
    }

    my (@accepted, @other, $busy);
    my ($n, $until) = (0, time + scaled(60));
    # after the move, until a job is accepted (under ASan the whole loop can
    # fall inside the move)
    while ((!-e "$dir/move.done" || $n < 10 || !@accepted) && time < $until) {
        $n++;
        my $r = http('POST', "/async/$q", qq({"n":$n}),
            $n % 3 ? {} : { 'Idempotency-Key' => "move-$n" });
        if ($r->{status} == 202 && ($r->{json}{id} // '') =~ /^[0-9a-f]{32}$/) {
            push @accepted, [ $r->{json}{id}, $n ];
        } elsif ($r->{status} == 503 && $r->{headers}{'retry-after'}) {
            $busy++;
            select(undef, undef, undef, 0.01);
        } else {
            push @other, "$r->{status} $r->{content}";
        }
    }
    waitpid($mover, 0);
    is(slurp("$dir/move.done"), 'ok', "slot $slot moved from $from to $to");
    is($cl->slot_owner($slot), $to, 'the target owns it');
    ok($n >= 10, "$n submits during the move ("
        . scalar(@accepted) . ' accepted, ' . ($busy // 0) . ' 503)');
    is_deeply(\@other, [], 'each answered 202, or 503 with Retry-After')
        or diag(explain([ @other[0 .. ($#other < 9 ? $#other : 9)] ]));
    ok(@accepted > 0, 'jobs were accepted');

    my @late;
    for my $job (@accepted) {
        my ($id, $i) = @$job;
        my $doc;
        wait_until(sub {
            $doc = http('GET', "/jobs/$id")->{json};
            $doc && ($doc->{status} // '') =~ /^(?:done|failed|dead|expired)$/;
        }, scaled(20), "job $id");
        push @late, "$id: " . ($doc ? ($doc->{status} // '?') : 'no answer')
            unless $doc && ($doc->{status} // '') eq 'done'
                && ($doc->{result}{n} // 0) == $i;
    }
    is_deeply(\@late, [], 'every job accepted ends done, with its result');

    my $r = post_json("/async/$q", { after => 1 });
    is($r->{status}, 202, 'a job after the move: 202');
}

unlike(slurp(nginx_error_log()), qr/\[(?:alert|crit|emerg)\]/,
    'no alert in the error log');

done_testing();
