#!/usr/bin/perl
# Asynchronous jobs (docs/HTTP_API.md): 202 + Location, the job's record
# and the jobs endpoint (GET, long poll woken by the job's end, DELETE),
# the record's statuses and TTL, a cancelled job that never runs, and the
# sync path left as it was (no record, not one command more).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IO::Socket::INET;
use OffloadTest;
use RedisMonitor;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue sleep { handler sleep; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
queue hang { handler hang; workers 1; timeout 300ms; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ {
        offload_pass $1;
        offload_mode async;
        client_max_body_size 4m;
    }
    location ~ ^/short/([^/]+)$ {
        offload_pass $1;
        offload_mode async;
        offload_timeout 1s;
        offload_result_ttl 2s;
        offload_jobs_url /short-jobs/;
    }
    location /jobs/ { offload_jobs; }
    location /short-jobs/ { offload_jobs; offload_result_ttl 2s; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}'), 'stack ready');
ok(wait_until(sub {
    (redis_cmd('PUBSUB', 'NUMSUB', 'offload:jobs:done')->[1] // 0) == 2;
}, 10, 'both workers hear the ends of jobs'), 'subscribed to job ends');

sub job { http('GET', "/jobs/$_[0]" . ($_[1] // '')) }

# Submits an async job; returns its id (and checks the 202).
sub submit {
    my ($path, $body, $name) = @_;
    my $r = post_json($path, $body);
    is($r->{status}, 202, "$name: 202") or diag($r->{content});
    my $id = $r->{json}{id} // '';
    return $id;
}

# Waits until the job's record shows one of the statuses; returns the doc.
sub job_until {
    my ($id, $re, $timeout) = @_;
    my $doc;
    wait_until(sub {
        $doc = job($id)->{json};
        $doc && ($doc->{status} // '') =~ $re;
    }, $timeout // scaled(10), "job $id $re");
    return $doc // {};
}

# ---- submit, 202, Location, poll until done
my $r = post_json('/async/echo', { hello => 'async' });
is($r->{status}, 202, '202 Accepted');
my $id = $r->{json}{id} // '';
like($id, qr/^[0-9a-f]{32}$/, 'the body has the job id');
is($r->{headers}{location}, "/jobs/$id", 'Location: /jobs/<id>');
is($r->{json}{status}, 'queued', 'status queued');
is($r->{json}{status_url}, "/jobs/$id", 'status_url');
is($r->{headers}{'x-offload-job-id'}, $id, 'X-Offload-Job-Id');
ok(!exists $r->{headers}{'preference-applied'},
    'no Preference-Applied without Prefer');
# on an async location, Prefer: respond-async is applied all the same
# (before: no Preference-Applied, which HTTP_API.md promised)
$r = http('POST', '/async/echo', '{"hello":"preferred"}',
    { Prefer => 'respond-async' });
is($r->{status}, 202, 'Prefer: respond-async on an async location: 202');
is($r->{headers}{'preference-applied'}, 'respond-async',
    'Preference-Applied: respond-async');

my $doc = job_until($id, qr/^done$/);
is($doc->{status}, 'done', 'polled: done');
# the same URL answers a changing state: no cache may keep it (before: no
# Cache-Control, and a 200 is cacheable by heuristics)
is(http('GET', "/jobs/$id")->{headers}{'cache-control'}, 'no-store',
    'Cache-Control: no-store');
is(http('GET', '/jobs/' . ('0' x 32))->{headers}{'cache-control'},
    'no-store', 'on a 404 too');
is_deeply($doc->{result}, { hello => 'async' }, 'the result is the answer');
is($doc->{result_status}, 200, 'result_status 200');
is($doc->{queue}, 'echo', 'queue');
is($doc->{attempts}, 1, 'attempts 1');
ok($doc->{submitted_at} <= $doc->{started_at}
    && $doc->{started_at} <= $doc->{finished_at}
    && abs($doc->{submitted_at} - time * 1000) < 60_000,
    'submitted_at <= started_at <= finished_at, ms since the epoch');
is($doc->{next_attempt_at}, undef, 'next_attempt_at null');

# started_at and finished_at are Redis' clock in whole ms, which the
# scripts make from TIME's text (its seconds, then the first three of its
# microseconds' six digits): between TIME before the submits and after the
# ends, for jobs whatever microseconds they fall on
sub redis_ms {
    my $t = redis_cmd('TIME');
    return $t->[0] * 1000 + int($t->[1] / 1000);
}
my $before = redis_ms();
my @timed = map { submit('/async/echo', { n => $_ }, "timed job $_") } 1 .. 10;
job_until($_, qr/^done$/) for @timed;
my $after = redis_ms();
my @off = grep {
    my ($s, $f) = @{ redis_cmd('HMGET', record_key($_), 'started_at',
                               'finished_at') };
    !(($s // '') =~ /^\d{13}$/ && ($f // '') =~ /^\d{13}$/ && $before <= $s
      && $s <= $f && $f <= $after);
} @timed;
is(scalar @off, 0, "10 jobs' started_at and finished_at: ms by Redis' TIME,"
    . " between TIME before and after") or diag(explain([ map {
    redis_cmd('HGETALL', record_key($_)) } @off ]));
my $ttl = redis_cmd('PTTL', record_key($id));
ok($ttl > 3_500_000 && $ttl <= 3_600_000, "record TTL 1h by default ($ttl)");
$ttl = redis_cmd('PTTL', "offload:{echo}:result:$id");
ok($ttl > 3_500_000, "its result stays as long ($ttl)");

# ---- a 2 MB job: its body through the body key, its result a list
my $big = '"' . ('b' x (2 * 2**20)) . '"';
$doc = job_until(submit('/async/echo', $big, 'a 2 MB job'), qr/^done$/);
ok(($doc->{result} // '') eq substr($big, 1, -1),
    'its 2 MB result, read whole');

# ---- Redis forgets its scripts (SCRIPT FLUSH, as a restart does): the
# worker's start and completion scripts go by EVAL after NOSCRIPT, and
# load them again (a sync job's completion needs no script: t/41)
redis_cmd('SCRIPT', 'FLUSH');
$doc = job_until(submit('/async/echo', { after => 'flush' },
    'after SCRIPT FLUSH'), qr/^done$/);
is_deeply($doc->{result}, { after => 'flush' },
    'after SCRIPT FLUSH: done, its result');
ok($doc->{started_at}, 'the start script marked it running (started_at)');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/worker echo:0: job-start script not loaded, using EVAL/,
    'the start script went by EVAL after NOSCRIPT');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/worker echo:0: completion script not loaded, using EVAL/,
    'so did the completion script');

# ---- Prefer: respond-async on a sync location
$r = http('POST', '/sync/echo', '{"p":1}', { Prefer => 'respond-async' });
is($r->{status}, 202, 'Prefer: respond-async: 202');
is($r->{headers}{'preference-applied'}, 'respond-async',
    'Preference-Applied: respond-async');
$doc = job_until($r->{json}{id} // '-', qr/^done$/);
is_deeply($doc->{result}, { p => 1 }, 'and it ran');
$r = http('POST', '/sync/echo', '{"p":2}', { Prefer => 'wait=5' });
is($r->{status}, 200, 'another preference: sync as before');
is_deeply($r->{json}, { p => 2 }, 'the answer itself');
# Prefer is a list of preferences (RFC 7240), their names matched whole,
# case-insensitive; a name inside another or in a quoted value is not it
for my $case ([ 'x=5, RESPOND-ASYNC', 202 ], [ 'respond-async; x=1', 202 ],
              [ 'a="x,y",respond-async', 202 ],
              [ 'no-respond-async-x', 200 ], [ 'respond-asyncx', 200 ],
              [ 'a="respond-async"', 200 ], [ 'a="x\\",respond-async"', 200 ],
              [ 'a=respond-async', 200 ])
{
    my ($prefer, $status) = @$case;
    $r = http('POST', '/sync/echo', '{"p":3}', { Prefer => $prefer });
    is($r->{status}, $status, "Prefer: $prefer: $status");
}

# ---- unknown ids
for my $path ('/jobs/' . ('0' x 32), '/jobs/nope', '/jobs/') {
    $r = http('GET', $path);
    is($r->{status}, 404, "GET $path: 404");
    is($r->{json}{error}{code}, 'unknown_job', 'unknown_job');
}
is(http('DELETE', '/jobs/' . ('f' x 32))->{status}, 404, 'DELETE: 404 too');
$r = http('POST', "/jobs/$id", '{}');
is($r->{status}, 405, 'POST to a job: 405');
is($r->{headers}{allow}, 'GET, HEAD, DELETE', 'Allow');

# the refused request's body is read and dropped, never taken for the next
# request on the connection: a PUT whose body is a request of its own,
# then a GET that closes; two answers, the hidden request not among them
{
    my $hidden = "GET /jobs/$id HTTP/1.1\r\nHost: hidden\r\n\r\n";
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Timeout => scaled(5))
        or die "connect: $!\n";
    print $sock "PUT /jobs/$id HTTP/1.1\r\nHost: t\r\n"
        . 'Content-Length: ' . length($hidden) . "\r\n\r\n$hidden"
        . "GET /jobs/$id HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    my $all = '';
    my $deadline = time + scaled(10);
    while (time < $deadline) {
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $all .= $buf;
    }
    close $sock;
    my @status = $all =~ m{HTTP/1\.1 (\d\d\d) }g;
    diag("answers: [$all]") unless "@status" eq "405 200";
    is("@status", "405 200", 'PUT with a request for a body: 405, then the '
        . 'next request, nothing smuggled in between');
}
is(job($id, '?wait=soon')->{status}, 400, 'a wait that is no number: 400');

# ---- a failed job: the error, not a result
$doc = job_until(submit('/async/sleep', '{"ms":-1}', 'bad input'),
    qr/^failed$/);
is($doc->{status}, 'failed', 'a handler error: failed');
is($doc->{result_status}, 422, 'result_status 422');
is($doc->{error}{code}, 'handler_error', 'the error object')
    or diag(explain $doc);
ok(!exists $doc->{result}, 'no result');

# ---- a job its worker dies running: the supervisor's dead letter
$doc = job_until(submit('/async/crash', '{}', 'a crash'), qr/^dead$/);
is($doc->{status}, 'dead', 'out of attempts: dead');
is($doc->{result_status}, 502, 'result_status 502');
is($doc->{error}{code}, 'worker_crashed', 'worker_crashed');

# ---- a job over its queue's timeout: killed, dead-lettered, but failed
$doc = job_until(submit('/async/hang', '{}', 'a hang'), qr/^(failed|dead)$/);
is($doc->{status}, 'failed', 'job_timeout: failed, not dead');
is($doc->{error}{code}, 'job_timeout', 'job_timeout');

# ---- long poll: woken by the job's end
my $slow = submit('/async/sleep', '{"ms":400}', 'a 400 ms job');
my $t0 = time;
$r = job($slow, '?wait=10');
my $got = time * 1000;
is($r->{status}, 200, 'long poll: 200');
is($r->{json}{status}, 'done', 'it answers once the job is done');
my $wake = $got - $r->{json}{finished_at};
diag(sprintf "long poll answered %.1f ms after the job ended", $wake);
ok($wake >= 0 && $wake < 200, "woken within 200 ms of the end ($wake)");
ok((time - $t0) < 5, 'long before the wait passed');

# ---- the wait passes: the status as it is
$slow = submit('/async/sleep', '{"ms":2500}', 'a 2.5 s job');
job_until($slow, qr/^running$/);
$t0 = time;
$r = job($slow, '?wait=1');
my $waited = time - $t0;
is($r->{status}, 200, 'wait passed: 200');
is($r->{json}{status}, 'running', 'with the current status');
ok($waited >= 0.9 && $waited < 3, sprintf 'after the wait (%.2f s)', $waited);

# ---- 409s: running, then finished
$r = http('DELETE', "/jobs/$slow");
is($r->{status}, 409, 'DELETE a running job: 409');
is($r->{json}{error}{code}, 'running', 'running');
job_until($slow, qr/^done$/);
$r = http('DELETE', "/jobs/$slow");
is($r->{status}, 409, 'DELETE a finished job: 409');
is($r->{json}{error}{code}, 'already_finished', 'already_finished');
# a precondition does not change what would not be a success anyway
is(http('DELETE', "/jobs/$slow", undef, { 'If-Match' => '"v1"' })
    ->{json}{error}{code}, 'already_finished',
    'with If-Match: "v1": 409 already_finished all the same');
is(http('DELETE', '/jobs/' . ('f' x 32), undef, { 'If-Match' => '"v1"' })
    ->{status}, 404, 'an unknown job with If-Match: 404');

# ---- cancel a queued job: it never runs
sub sleep_ok { node_doc()->{queues}{sleep}{workers}[0]{jobs_ok} // 0 }
# the registry counts each heartbeat: two sleep jobs answered 200 so far
ok(wait_until(sub { sleep_ok() == 2 }, scaled(5), 'jobs_ok 2'),
    'the sleep worker ran two jobs so far');
my $ok_before = 2;
my $busy = submit('/async/sleep', '{"ms":1500}', 'the busy job');
job_until($busy, qr/^running$/);
my $victim = submit('/async/sleep', '{"ms":1}', 'the job to cancel');
is(job($victim)->{json}{status}, 'queued', 'queued behind it');
# RFC 9110: an If-Match no tag of the job meets (a job has none) cancels
# nothing (before: it was ignored and the job cancelled)
$r = http('DELETE', "/jobs/$victim", undef, { 'If-Match' => '"v1"' });
is($r->{status}, 412, 'DELETE with If-Match: "v1": 412');
is($r->{json}{error}{code}, 'precondition_failed', 'precondition_failed');
is(job($victim)->{json}{status}, 'queued', 'the job is not cancelled');
# an empty one, and a list holding "*" with a tag, are tag lists too
for my $if ('', '"v1", *') {
    $r = http('DELETE', "/jobs/$victim", undef, { 'If-Match' => $if });
    is($r->{status}, 412, "DELETE with If-Match: '$if': 412");
}
# If-None-Match: * asks that the job not exist: it does (it cancelled)
$r = http('DELETE', "/jobs/$victim", undef, { 'If-None-Match' => '*' });
is($r->{status}, 412, 'DELETE with If-None-Match: *: 412');
is(job($victim)->{json}{status}, 'queued', 'still not cancelled');
$r = http('DELETE', "/jobs/$victim", undef, { 'If-Match' => '*' });
is($r->{status}, 200, 'DELETE a queued job with If-Match: *: 200');
is($r->{json}{status}, 'cancelled', 'status cancelled');
ok($r->{json}{finished_at}, 'finished_at set');
job_until($busy, qr/^done$/);
ok(wait_until(sub {
    redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0
        && redis_cmd('XPENDING', 'offload:{sleep}:jobs', 'workers')->[0] == 0
}, scaled(10), 'the entry taken and gone'), 'the worker took the entry');
ok(wait_until(sub { sleep_ok() == $ok_before + 1 }, scaled(5), 'jobs_ok'),
    'the sleep worker ran the busy job only');
# counted and logged where it was dropped (before: neither)
sub sleep_count { node_doc()->{queues}{sleep}{workers}[0]{$_[0]} // -1 }
ok(wait_until(sub { sleep_count('jobs_cancelled') == 1 }, scaled(5),
    'jobs_cancelled'), 'the worker counts it in jobs_cancelled');
# the line carries the job's ids, as the lines of its run would
my $and_request = qr/, request [0-9a-f]{32}[,)]/;
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job $victim was cancelled, not run \(job $victim$and_request/,
    'and logs it, the line carrying its job and request ids');
$doc = job($victim)->{json};
is($doc->{status}, 'cancelled', 'still cancelled');
is($doc->{started_at}, undef, 'never started');
is(redis_cmd('EXISTS', "offload:{sleep}:result:$victim"), 0, 'no result');
is(http('DELETE', "/jobs/$victim")->{status}, 409,
    'cancelled twice: 409 already_finished');

# ---- a short result TTL, and a job that expired in the queue (the busy
# job ends past the short job's 1 s deadline, well within its record's
# 1 s + 2 s before it ends)
$busy = submit('/async/sleep', '{"ms":1500}', 'busy again');
job_until($busy, qr/^running$/);
$r = post_json('/short/sleep', '{"ms":1}');
is($r->{status}, 202, 'short: 202');
is($r->{headers}{location}, "/short-jobs/$r->{json}{id}",
    'offload_jobs_url names the Location');
my $late = $r->{json}{id};
$doc = job_until($late, qr/^expired$/);
is($doc->{status}, 'expired', 'no worker before the deadline: expired');
my $expired_at = $doc->{finished_at};
is(job($busy)->{json}{status}, 'running',
    'said while the job is still queued behind the busy one');
ok($doc->{finished_at} && $doc->{finished_at} - $doc->{submitted_at} >= 1000
    && $doc->{finished_at} - $doc->{submitted_at} < 1100,
    'finished_at is its deadline');
is(redis_cmd('HGET', record_key($late), 'status'), 'expired',
    'the record marked so');
ok(wait_until(sub { $doc = job($late)->{json}; $doc && $doc->{error} },
    scaled(5), 'the worker answers it'), 'the worker reaches it later');
is($doc->{status}, 'expired', 'the worker reaching it: still expired');
is($doc->{error}{code}, 'expired', 'its error');
is($doc->{finished_at}, $expired_at, 'finished_at still its deadline');
# counted and logged by the worker (before: neither)
ok(wait_until(sub { sleep_count('jobs_expired') == 1 }, scaled(5),
    'jobs_expired'), 'the worker counts it in jobs_expired');
my $late_taken = qr/job $late expired \d+ ms before a worker took it/;
like(slurp(tmpdir() . '/sidecar.log'),
    qr/$late_taken, not run \(job $late$and_request/,
    'and logs it, the line carrying its job and request ids');
$ttl = redis_cmd('PTTL', record_key($late));
ok($ttl > 0 && $ttl <= 2000, "offload_result_ttl 2s: record TTL $ttl ms");
ok(wait_until(sub { redis_cmd('EXISTS', record_key($late)) == 0 },
    scaled(5), 'record expired'), 'the record expires');
is(redis_cmd('EXISTS', "offload:{sleep}:result:$late"), 0,
    'and the result with it');
is(http('GET', "/short-jobs/$late")->{status}, 404, 'then 404');

# one read by no one before the worker reaches it: Redis' clock says its
# deadline passed, so the start script does not mark it running (before:
# the record of a job that never ran had started_at and attempts 1)
my $busy2 = submit('/async/sleep', '{"ms":1500}', 'busy once more');
job_until($busy2, qr/^running$/);
my $unread = post_json('/short/sleep', '{"ms":1}')->{json}{id};
ok(wait_until(sub { sleep_count('jobs_expired') == 2 }, scaled(5),
    'jobs_expired'), 'the worker reaches an expired job nobody read');
$doc = job($unread)->{json};
is($doc->{status}, 'expired', '... expired');
is($doc->{attempts}, 0, '... never started: attempts 0');
ok(!defined $doc->{started_at}, '... started_at null');

# ---- the sync path: no record, the same commands
job_until($busy, qr/^done$/);
my $mon = RedisMonitor->start;
$r = post_json('/sync/echo', '{"s":1}');
is($r->{status}, 200, 'sync: 200');
$mon->catch_up(5);
my @seen = @{ $mon->seen };
is(scalar(grep { grep { /^offload:job:/ } @$_ } @seen), 0,
    'no record touched by a sync job');
# (this job's: the supervisors' and nginx's periodic scripts come between
# on a loaded machine)
my $sync_id = $r->{headers}{'x-offload-job-id'} // '?';
is_deeply([ map { $_->[1] } grep {
        $_->[1] =~ /^(XADD|EVALSHA|EVAL|SET|PUBLISH)$/i
        && grep { index($_, $sync_id) >= 0 } @$_[2 .. $#$_] } @seen ],
    [ 'XADD', 'SET', 'PUBLISH' ], 'XADD, then the completion only: its '
    . 'result stored and published, with no script (MULTI/EXEC)');
my ($set) = grep { $_->[1] eq 'SET' && $_->[2] =~ /\Q$sync_id\E\z/ } @seen;
like(join(' ', @$set[4 .. $#$set]), qr/^NX PX \d+\z/,
    'the result stored unless stored, with a TTL');

# ---- docs/HTTP_API.md's examples, as written
my ($section) = slurp("$FindBin::Bin/../docs/HTTP_API.md")
    =~ /^## Examples\n(.*?)(?=^## |\z)/ms;
my @blocks;
while (($section // '') =~ /^```sh\n(.*?)^```$/msg) {
    push @blocks, $1 =~ s/\b8080\b/${\ nginx_port()}/gr;
}
is(scalar @blocks, 4, 'HTTP_API.md: four curl examples');
my $tmp = tmpdir();
spew("$tmp/doc.sh", join("echo\necho ---\n", @blocks));
my @out = split /\n---\n/, `bash $tmp/doc.sh 2>&1`;
my $d = json_decode($out[0]);
is($d && $d->{status}, 'done', 'submit, then wait: done') or diag($out[0]);
is_deeply($d && $d->{result}, { hello => 'later' }, 'with the result');
like($out[1] // '', qr{^HTTP/1\.1 202 Accepted\r\n}, 'Prefer: 202');
like($out[1] // '', qr{\r\nLocation: /jobs/[0-9a-f]{32}\r\n}, 'Location');
like($out[1] // '', qr{\r\nPreference-Applied: respond-async\r\n},
    'Preference-Applied');
like($out[2] // '', qr{^HTTP/1\.1 200 OK\r\n}, 'Prefer: wait=5: 200');
like($out[2] // '', qr{\r\nX-Offload-Job-Id: [0-9a-f]{32}\r\n}, 'X-Offload-Job-Id');
like($out[2] // '', qr{\r\n\r\n\{"quick":1\}\z}, 'and the result');
like($out[3] // '', qr/"code":"already_finished"/, 'DELETE: 409 as told');

finish();
