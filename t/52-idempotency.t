#!/usr/bin/perl
# Idempotency-Key (docs/HTTP_API.md): a second submission of a key to a
# queue gets the first job (sync: its result, async: its 202) and the work
# runs once, proven by a counting handler (example.counter: the nth job a
# worker runs answers jobs n) and by the stream's entries; concurrent
# duplicates too; another body under the key is 422; a bad key 400; the
# key is free again after offload_idempotency_ttl; off ignores it; while
# no worker serves the queue a duplicate is answered as ever.  And
# offload_max_backlog on async submits: 503 queue_full with Retry-After.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IO::Select;
use OffloadTest;

my $plugin = build_path('examples/offload_example.so');

start_redis();
start_sidecar(conf => <<"CONF");
load_module $plugin;
queue count { handler example.counter; workers 1; }
queue sleep { handler sleep; workers 1; prefetch 1; }
queue echo { handler echo; workers 1; }
CONF
start_server_nginx(server => <<'SERVER');
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location ~ ^/short/([^/]+)$ {
        offload_pass $1;
        offload_idempotency_ttl 2s;
        offload_result_ttl 1s;
    }
    location ~ ^/brief/([^/]+)$ {
        offload_pass $1;
        offload_timeout 500ms;
    }
    location ~ ^/nokey/([^/]+)$ {
        offload_pass $1;
        offload_idempotency_ttl off;
    }
    location = /full/sleep {
        offload_pass sleep;
        offload_mode async;
        offload_max_backlog 2;
    }
    location /jobs/ { offload_jobs; }
    location /stop-jobs/ { offload_jobs; offload_cancel_running on; }
SERVER
ok(wait_nginx_ready('/sync/echo', '{}'), 'stack ready');

sub job { http('GET', "/jobs/$_[0]") }

sub code_of { my ($r) = @_; ref $r->{json} eq 'HASH'
    && ref $r->{json}{error} eq 'HASH' ? $r->{json}{error}{code} : '' }

sub post_key {
    my ($path, $body, $key, $timeout) = @_;
    return http('POST', $path, $body,
        defined $key ? { 'idempotency-key' => $key } : {}, $timeout);
}

# How many entries a queue's stream ever took (jobs submitted).
sub added {
    my ($queue) = @_;
    my $info = redis_cmd('XINFO', 'STREAM', "offload:{$queue}:jobs");
    my %h = @$info;
    return $h{'entries-added'};
}

# A fresh job of the counter: how many jobs its worker ran, this one too.
sub count_now {
    my $r = post_json('/sync/count', '{"fresh":1}');
    return $r->{json}{jobs} // -1;
}

# n requests at once, each on its own connection with the key; returns
# the answers (status, headers, json) once all are in.
sub at_once {
    my ($n, $path, $body, $key) = @_;
    my @s = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
        $s;
    } 1 .. $n;
    my $req = "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Idempotency-Key: $key\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    syswrite($_, $req) for @s;
    return map {
        my $raw = OffloadTest::read_raw($_, scaled(20));
        my $r = OffloadTest::parse_response(\$raw) || { status => 0 };
        $r->{json} = json_decode($r->{content} // '');
        $r;
    } @s;
}

# ---- sync: the duplicate gets the first job's result, the work ran once
my $before = count_now();
my $r = post_key('/sync/count', '{"a":1}', 'key-sync-1');
is($r->{status}, 200, 'sync with a key: 200');
is($r->{json}{jobs}, $before + 1, 'the job ran');
my $id = $r->{headers}{'x-offload-job-id'} // '';
like($id, qr/^[0-9a-f]{32}$/, 'X-Offload-Job-Id');
ok(!$r->{headers}{'idempotent-replayed'}, 'the first is not a replay');
like(redis_cmd('GET', 'offload:{count}:idem:key-sync-1') // '',
    qr/^$id [0-9a-f]{40}$/, 'the key names the job and the body SHA1');
ok(redis_cmd('PTTL', 'offload:{count}:idem:key-sync-1') > 86000_000,
    'the key lives offload_idempotency_ttl (24h)');
my $added = added('count');

my $d = post_key('/sync/count', '{"a":1}', 'key-sync-1');
is($d->{status}, 200, 'the duplicate: 200');
is($d->{content}, $r->{content}, 'the duplicate: the first job\'s result');
is($d->{headers}{'x-offload-job-id'}, $id, 'the duplicate: its id');
is($d->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed');
is(added('count'), $added, 'no entry added for the duplicate');
is(count_now(), $before + 2, 'the duplicate did not run (counter)');

# ---- another body under the key: 422; the key is per queue
$r = post_key('/sync/count', '{"a":2}', 'key-sync-1');
is($r->{status}, 422, 'another body under the key: 422');
is(code_of($r), 'idempotency_key_reused', 'idempotency_key_reused');
$r = post_key('/sync/echo', '{"a":2}', 'key-sync-1');
is($r->{status}, 200, 'the same key on another queue is another key');
is($r->{content}, '{"a":2}', 'and runs its own job');

# ---- async: the duplicate gets the first job's 202
$before = count_now();
$r = post_key('/async/count', '{"b":1}', 'key-async-1');
is($r->{status}, 202, 'async with a key: 202');
$id = $r->{json}{id} // '';
$d = post_key('/async/count', '{"b":1}', 'key-async-1');
is($d->{status}, 202, 'async duplicate: 202');
is($d->{json}{id}, $id, 'the same id');
is($d->{headers}{location}, "/jobs/$id", 'the same Location');
is($d->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed');
like($d->{json}{status} // '', qr/^(queued|running|done)$/,
    'the status as the record says');
my $job = http('GET', "/jobs/$id?wait=10")->{json} || {};
is($job->{status}, 'done', 'the job is done');
is($job->{result}{jobs}, $before + 1, 'its result');
$d = post_key('/async/count', '{"b":1}', 'key-async-1');
is($d->{status}, 202, 'a duplicate after the end: 202 too');
is($d->{json}{status}, 'done', 'with status done');
# the same key and body on a sync location of the queue: the result
$d = post_key('/sync/count', '{"b":1}', 'key-async-1');
is($d->{status}, 200, 'a sync duplicate of an async job: 200');
is($d->{json}{jobs}, $before + 1, 'the async job\'s result');
is(count_now(), $before + 2, 'the work ran once');

# ---- concurrent duplicates run once (sync: they wait for the first)
$added = added('sleep');
my @a = at_once(20, '/sync/sleep', '{"ms":400}', 'key-par-sync');
is(scalar(grep { $_->{status} == 200 } @a), 20, '20 at once: all 200');
my %ids = map { ($_->{headers}{'x-offload-job-id'} // '') => 1 } @a;
is(scalar keys %ids, 1, 'all the same job id');
is(scalar(grep { ($_->{content} // '') eq $a[0]{content} } @a), 20,
    'all the same result');
ok(($a[0]{content} // '') =~ /^\{"ms":(\d+)\}$/ && $1 >= 400,
    'the job\'s') or diag($a[0]{content});
is(scalar(grep { $_->{headers}{'idempotent-replayed'} } @a), 19,
    '19 replays');
is(added('sleep'), $added + 1, 'one entry added');

$before = count_now();
@a = at_once(20, '/sync/count', '{"c":1}', 'key-par-count');
is(scalar(grep { $_->{status} == 200 } @a), 20, 'counter: all 200');
is(scalar(grep { ($_->{json}{jobs} // 0) == $before + 1 } @a), 20,
    'counter: all one run\'s result');
is(count_now(), $before + 2, 'counter: it ran once');

$before = count_now();
@a = at_once(20, '/async/count', '{"d":1}', 'key-par-async');
is(scalar(grep { $_->{status} == 202 } @a), 20, 'async at once: all 202');
%ids = map { ($_->{json}{id} // '') => 1 } @a;
is(scalar keys %ids, 1, 'async at once: one id');
$job = http('GET', '/jobs/' . (keys %ids)[0] . '?wait=10')->{json} || {};
is($job->{result}{jobs}, $before + 1, 'async at once: one run');
is(count_now(), $before + 2, 'async at once: it ran once');

# ---- a duplicate waits at most its own deadline
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $s "POST /sync/sleep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Idempotency-Key: key-wait\r\nContent-Length: 11\r\n\r\n"
    . '{"ms":1500}';
ok(wait_until(sub { redis_cmd('EXISTS', 'offload:{sleep}:idem:key-wait') },
    scaled(5), 'first job submitted'), 'a 1.5 s job with a key is on');
my $t0 = time;
$r = post_key('/brief/sleep', '{"ms":1500}', 'key-wait');
is($r->{status}, 504, 'its duplicate with a 500 ms deadline: 504');
is(code_of($r), 'timeout', 'timeout');
my ($wid) = (redis_cmd('GET', 'offload:{sleep}:idem:key-wait') // '')
    =~ /^(\S+)/;
# (before: no id, so the client could not look the job up)
is($r->{headers}{'x-offload-job-id'}, $wid, 'X-Offload-Job-Id: the first');
is($r->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed');
ok(time - $t0 < 1.4, 'answered at its own deadline');
my $raw = OffloadTest::read_raw($s, scaled(10));
like($raw, qr{^HTTP/1\.1 200}, 'the first job still answers its client');
$t0 = time;
$r = post_key('/brief/sleep', '{"ms":1500}', 'key-wait');
is($r->{status}, 200, 'a duplicate after the end: 200');
is($r->{content}, ($raw =~ /\r\n\r\n(.*)\z/s)[0], 'the first\'s result');
ok(time - $t0 < 1.2, 'at once, not after a second 1.5 s run');

# ---- a keyed sync job past its deadline that no worker took expired: a
# read says so at once, and the key is free again, so the client's retry
# with it makes a new job, which runs (a sync retry as a client sends it
# after its 504: Stripe keeps a key only for a request that ran); the
# worker that reaches the first job later does not run it.  One that runs
# past its deadline is left alone: its duplicate waits for it.  (Before: a
# read said queued until a worker reached it, and a retry got the first
# job's 504 expired for the key's whole TTL, 24 h by default.)
sub key_job { (redis_cmd('GET', "offload:{$_[0]}:idem:$_[1]") // '')
    =~ /^(\S+)/ ? $1 : 'none' }

my $busy = send_post('/sync/sleep', '{"ms":' . scaled(3000) . '}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'busy'),
    'the sleep worker is busy');
my %first;
for my $key (qw(key-expire-read key-expire-retry)) {
    $r = post_key('/brief/sleep', '{"ms":1}', $key);
    is($r->{status}, 504, "$key: a keyed sync job no worker took: 504");
    $first{$key} = key_job('sleep', $key);
    # (before: no id, the client could find its job again only by the key)
    is($r->{headers}{'x-offload-job-id'}, $first{$key},
        "$key: its 504 names the job");
}
$r = job($first{'key-expire-read'});
is($r->{json}{status}, 'expired', 'a read past its deadline: expired');
is($r->{json}{finished_at}, $r->{json}{submitted_at} + 500,
    'finished_at: its deadline');
my %retry = map { $_ => send_post('/sync/sleep', '{"ms":1}',
    { 'Idempotency-Key' => $_ }) } keys %first;
ok(wait_until(sub { !grep { key_job('sleep', $_) eq $first{$_} }
        keys %first }, scaled(5), 'new jobs'),
    'a retry with the key of an expired job makes a new job');
$r = job($first{'key-expire-retry'});
is($r->{json}{status}, 'expired', 'the first, read by no one: expired');
is($r->{json}{finished_at}, $r->{json}{submitted_at} + 500,
    'finished_at: its deadline');
for my $key (sort keys %retry) {
    my $raw = OffloadTest::read_raw($retry{$key}, scaled(10));
    my $a = OffloadTest::parse_response(\$raw) || { status => 0 };
    is($a->{status}, 200, "$key: the retry ran: 200");
    is($a->{headers}{'x-offload-job-id'}, key_job('sleep', $key),
        "$key: the new job's id");
    ok(!$a->{headers}{'idempotent-replayed'}, "$key: not a replay");
    isnt($a->{headers}{'x-offload-job-id'} // '', $first{$key},
        "$key: not the first job");
    $d = post_key('/sync/sleep', '{"ms":1}', $key);
    is($d->{headers}{'idempotent-replayed'}, 'true',
        "$key: a duplicate now gets the new job's result");
    is($d->{headers}{'x-offload-job-id'}, key_job('sleep', $key),
        "$key: with its id");
}
close $busy;
ok(wait_until(sub { pending_jobs('sleep') == 0
        && redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0 },
    scaled(10), 'the worker passed them'), 'the worker reached the first jobs');
# dropped by the mark their expiry left (the cancelled set), not by the
# worker's own clock: one behind Redis' would have run them, and with their
# keys free, the work twice
for my $key (sort keys %first) {
    is(job($first{$key})->{json}{status}, 'expired', "$key: not run");
    like(slurp(tmpdir() . '/sidecar.log'),
        qr/job $first{$key} cancelled, not run/,
        "$key: dropped as marked at its expiry");
}
$r = post_key('/brief/sleep', '{"ms":1000}', 'key-late');
is($r->{status}, 504, 'a keyed sync job running past its deadline: 504');
my $xid = key_job('sleep', 'key-late');
is($r->{headers}{'x-offload-job-id'}, $xid, 'its 504 names the job');
like($r->{content}, qr{"id":"$xid","status_url":"[^"]*/$xid"},
    '... and where to read it');
isnt(job($xid)->{json}{status}, 'expired',
    'a read while it runs: not expired');
$d = post_key('/sync/sleep', '{"ms":1000}', 'key-late');
is($d->{headers}{'x-offload-job-id'}, $xid,
    'its duplicate waits for it, past its deadline');
is($d->{status}, 200, 'and gets its result');
ok(wait_until(sub { job($xid)->{json}{status} eq 'done' }, scaled(5),
    'done'), 'it ends done');

# ---- a sync job with a key has a record, but its client waits: no cancel
my $hold = send_post('/sync/sleep', '{"ms":800}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'held'),
    'the sleep worker is busy');
$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $s "POST /sync/sleep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Idempotency-Key: key-cancel\r\nContent-Length: 8\r\n\r\n"
    . '{"ms":1}';
my $mem;
ok(wait_until(sub {
    $mem = redis_cmd('GET', 'offload:{sleep}:idem:key-cancel') }, scaled(5),
    'submitted'), 'a queued sync job with a key');
($id) = ($mem // '') =~ /^(\S+)/;
is(job($id)->{json}{status}, 'queued', 'the jobs endpoint knows it');
$r = http('DELETE', "/jobs/$id");
is($r->{status}, 409, 'DELETE of it: 409');
is(code_of($r), 'sync_job', 'sync_job');
$raw = OffloadTest::read_raw($s, scaled(10));
like($raw, qr{^HTTP/1\.1 200.*\{"ms":\d+\}\z}s, 'it ran and answered');
is(job($id)->{json}{status}, 'done', 'its record: done');
close $hold;

# ---- a cancelled job no longer holds its key either (as Oban's unique
# jobs leave cancelled ones out): a submission with the key makes a new
# job, which runs, and the cancelled one never does
$hold = send_post('/sync/sleep', '{"ms":' . scaled(1500) . '}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'held'),
    'the sleep worker is busy');
$r = post_key('/async/sleep', '{"ms":1}', 'key-cancelled');
my $cid = $r->{json}{id} // 'none';
is(http('DELETE', "/jobs/$cid")->{json}{status}, 'cancelled',
    'a queued async job with a key, cancelled');
$r = post_key('/async/sleep', '{"ms":1}', 'key-cancelled');
is($r->{status}, 202, 'the key again: 202');
my $nid = $r->{json}{id} // '';
isnt($nid, $cid, 'a new job');
ok(!$r->{headers}{'idempotent-replayed'}, 'not a replay');
$d = post_key('/async/sleep', '{"ms":1}', 'key-cancelled');
is($d->{json}{id}, $nid, 'the key names the new job now');
is($d->{headers}{'idempotent-replayed'}, 'true', 'its duplicate: a replay');
close $hold;
ok(wait_until(sub { job($nid)->{json}{status} eq 'done' }, scaled(10),
    'done'), 'the new job ran');
is(job($cid)->{json}{status}, 'cancelled', 'the cancelled one did not');
is(job($cid)->{json}{started_at}, undef, 'never started');

# ---- but a job that ran keeps its key whatever its end: one cancelled
# while it ran (its side effects may be done) is its key's answer still
$r = post_key('/async/sleep', '{"ms":' . scaled(20000) . '}', 'key-ran');
my $rid = $r->{json}{id} // 'none';
ok(wait_until(sub { job($rid)->{json}{status} eq 'running' }, scaled(10),
    'running'), 'a keyed async job runs');
is(http('DELETE', "/stop-jobs/$rid")->{json}{status}, 'cancelled',
    'cancelled while it runs');
$d = post_key('/async/sleep', '{"ms":' . scaled(20000) . '}', 'key-ran');
is($d->{json}{id}, $rid, 'the key still names it');
is($d->{headers}{'idempotent-replayed'}, 'true', 'a replay');
ok(wait_until(sub { pending_jobs('sleep') == 0 }, scaled(10), 'stopped'),
    'its worker stopped');

# ---- a record a read marked expired by Redis' clock, while the worker's
# reading of it says the job's deadline is still ahead (staged: the
# record's status set as that read would): its start script says so, and
# the worker answers it expired as if its own reading had: the job never
# runs.
# (Before: it ran, and its record went from expired to done.)
$hold = send_post('/sync/sleep', '{"ms":' . scaled(1000) . '}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'held'),
    'the sleep worker is busy');
$r = post_json('/async/sleep', '{"ms":1}');
my $eid = $r->{json}{id} // 'none';
is(redis_cmd('HSET', record_key($eid), 'status', 'expired'), 0,
    'its record says expired');
close $hold;
ok(wait_until(sub { pending_jobs('sleep') == 0
        && redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0 },
    scaled(10), 'passed'), 'the worker passed its entry');
$r = job($eid)->{json};
is($r->{status}, 'expired', 'it did not run: still expired');
is($r->{error}{code}, 'expired', 'the worker answered it expired');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job $eid expired before a worker took it \(so Redis says, /,
    'and logged why');

# ---- a keyed sync job's end is published on offload:jobs:done only when
# a read (a duplicate, a long poll) marked its record waited
my $sub = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "redis connect: $!";
syswrite($sub, "*2\r\n\$9\r\nSUBSCRIBE\r\n\$17\r\noffload:jobs:done\r\n");
my $heard = '';
# the ids published since the subscription, once $want is among them
sub heard {
    my ($want) = @_;
    my $sel = IO::Select->new($sub);
    my $end = time + scaled(10);
    while ($heard !~ /\r\n\Q$want\E\r\n/ && $sel->can_read($end - time)) {
        sysread($sub, $heard, 65536, length $heard) or last;
    }
    return [ $heard =~ /^\$7\r\nmessage\r\n\$17\r\noffload:jobs:done\r\n
                        \$\d+\r\n([^\r]*)\r\n/gmx ];
}
heard('subscribe');
$r = post_key('/sync/echo', '{"quiet":1}', 'key-quiet');
my $quiet = $r->{headers}{'x-offload-job-id'} // '';
is($r->{status}, 200, 'a keyed sync job nobody else waits for: 200');
ok(!redis_cmd('HEXISTS', record_key($quiet), 'waited'),
    'its record is not marked waited');
$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $s "POST /sync/sleep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Idempotency-Key: key-poll\r\nContent-Length: 10\r\n\r\n"
    . '{"ms":600}';
ok(wait_until(sub {
    $mem = redis_cmd('GET', 'offload:{sleep}:idem:key-poll') }, scaled(5),
    'submitted'), 'a 600 ms keyed sync job');
($id) = ($mem // '') =~ /^(\S+)/;
$t0 = time;
$r = http('GET', "/jobs/$id?wait=10");
is($r->{json}{status}, 'done', 'a long poll of it: done');
ok(time - $t0 < scaled(3), 'woken at its end, not at the wait\'s');
is(redis_cmd('HGET', record_key($id), 'waited'), 1,
    'the long poll marked its record waited');
like(OffloadTest::read_raw($s, scaled(10)), qr{^HTTP/1\.1 200},
    'its own client got its answer');
is_deeply(heard($id), [ $id ], 'only the waited job\'s end was published');
close $sub;

# ---- bad keys: 400, nothing submitted
$added = added('count');
for my $bad ('', 'a b', 'x' x 256, "caf\xc3\xa9", '"open') {
    # HTTP::Tiny sends no byte over 0x7f in a header
    ($r) = at_once(1, '/sync/count', '{}', $bad);
    is($r->{status}, 400, "bad key \"$bad\": 400") or diag($r->{content});
    is(code_of($r), 'bad_idempotency_key', 'bad_idempotency_key');
}
$r = http('POST', '/sync/count', '{}', { 'idempotency-key' => [ 'a', 'b' ] });
is($r->{status}, 400, 'two Idempotency-Key headers: 400');
is(added('count'), $added, 'no job for a bad key');
$r = post_key('/sync/count', '{"q":1}', '"quoted-key"');
is($r->{status}, 200, 'a key in double quotes (structured field): 200');
$d = post_key('/sync/count', '{"q":1}', 'quoted-key');
is($d->{content}, $r->{content}, 'is the same key bare');
$r = post_key('/sync/count', '{"x":1}', 'x' x 255);
is($r->{status}, 200, 'a key of 255 characters: 200');

# ---- after offload_idempotency_ttl the key is free again
$r = post_key('/short/count', '{"t":1}', 'key-ttl');
my $first = $r->{json}{jobs};
$d = post_key('/short/count', '{"t":1}', 'key-ttl');
is($d->{json}{jobs}, $first, 'within the TTL: the first result');
my $pttl = redis_cmd('PTTL', 'offload:{count}:idem:key-ttl');
ok($pttl > 0 && $pttl <= 2000, "the key lives 2 s ($pttl ms left)");
ok(wait_until(sub {
    !redis_cmd('EXISTS', 'offload:{count}:idem:key-ttl') }, scaled(5),
    'key expired'), 'the key expires');
$r = post_key('/short/count', '{"t":1}', 'key-ttl');
is($r->{status}, 200, 'after the TTL: 200');
ok(!$r->{headers}{'idempotent-replayed'}, 'not a replay');
ok(($r->{json}{jobs} // 0) > $first, 'the job ran again');

# ---- offload_idempotency_ttl off: the header is ignored
$before = count_now();
$r = post_key('/nokey/count', '{}', 'key-off');
$d = post_key('/nokey/count', '{}', 'key-off');
is($d->{json}{jobs}, $before + 2, 'off: both ran');
ok(!redis_cmd('EXISTS', 'offload:{count}:idem:key-off'), 'off: no key');

# ---- offload_max_backlog on async submits
my $long = post_json('/async/sleep', '{"ms":1500}');
is($long->{status}, 202, 'a long job takes the worker');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'taken'),
    'the worker holds it');
my @queued = map { post_json('/full/sleep', '{"ms":10}') } 1 .. 2;
is(scalar(grep { $_->{status} == 202 } @queued), 2, 'two queued: 202');
$r = post_json('/full/sleep', '{"ms":10}');
is($r->{status}, 503, 'the third async submit: 503');
is(code_of($r), 'queue_full', 'queue_full');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'Retry-After');
ok($r->{headers}{'retry-after'} >= 1 && $r->{headers}{'retry-after'} <= 30,
    'Retry-After within 1..30');
ok(!$r->{headers}{location}, 'no Location: no job');
$d = post_key('/full/sleep', '{"ms":10}', 'key-full');
is($d->{status}, 503, 'with a key too');
ok(!redis_cmd('EXISTS', 'offload:{sleep}:idem:key-full'),
    'a refused job leaves no key');
ok(wait_until(sub { post_json('/full/sleep', '{"ms":10}')->{status} == 202 },
    scaled(10), 'drained'), 'accepted again once drained');

# ---- docs/HTTP_API.md's example, as written
my ($section) = slurp("$FindBin::Bin/../docs/HTTP_API.md")
    =~ /^## Idempotency-Key\n(.*?)(?=^## |\z)/ms;
my ($sh) = ($section // '') =~ /^```sh\n(.*?)^```$/ms;
ok($sh, 'HTTP_API.md: the Idempotency-Key example');
$sh = ($sh // '') =~ s/\b8080\b/${\ nginx_port()}/gr;
$added = added('echo');
spew(tmpdir() . '/idem.sh', $sh);
my $out = `bash ${\ tmpdir()}/idem.sh 2>&1`;
like($out, qr/^\{"order":42\}HTTP\/1\.1 200 OK\r\n/, 'the first: the result');
like($out, qr/\r\nIdempotent-Replayed: true\r\n.*\r\n\r\n\{"order":42\}\z/s,
    'the second: the same, Idempotent-Replayed');
is(added('echo'), $added + 1, 'one job');

# ---- no worker serves the queue (its node drained, as in a deploy): a
# duplicate is answered all the same, a new key is 503 no_workers and
# adds nothing (before: every keyed request was 503 no_workers, so a
# client retrying through the deploy could not learn its job exists)
my $a1 = post_key('/async/echo', '{"deploy":1}', 'key-deploy-async');
is($a1->{status}, 202, 'async with a key: 202');
my $s1 = post_key('/sync/echo', '{"deploy":2}', 'key-deploy-sync');
is($s1->{status}, 200, 'sync with a key: 200');
ok(wait_until(sub { (job($a1->{json}{id})->{json}{status} // '') eq 'done' },
    scaled(10), 'async done'), 'the async job done');
my $drain = 'offload:{ctl}:drain:' . node_name();
redis_cmd('SET', $drain, 1);
ok(wait_until(sub {
    code_of(post_json('/sync/echo', '{}', 1)) eq 'no_workers' },
    scaled(15), 'no_workers'), 'the node drained: a new job is no_workers');
$added = added('echo');
$d = post_key('/async/echo', '{"deploy":1}', 'key-deploy-async');
is($d->{status}, 202, 'drained: the async duplicate is 202')
    or diag($d->{content});
is($d->{json}{id}, $a1->{json}{id}, '... with the first job\'s id');
is($d->{json}{status}, 'done', '... and its status, done');
is($d->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed');
$d = post_key('/sync/echo', '{"deploy":2}', 'key-deploy-sync');
is($d->{status}, 200, 'drained: the sync duplicate is 200');
is($d->{content}, $s1->{content}, '... the first job\'s result');
$d = post_key('/async/echo', '{"deploy":3}', 'key-deploy-new');
is($d->{status}, 503, 'drained: a new key is 503');
is(code_of($d), 'no_workers', '... no_workers');
is($d->{headers}{'retry-after'}, 5, '... Retry-After 5');
ok(!redis_cmd('EXISTS', 'offload:{echo}:idem:key-deploy-new'),
    '... it leaves no key');
is(added('echo'), $added, 'no entry added while drained');
redis_cmd('DEL', $drain);

finish();
