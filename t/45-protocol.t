#!/usr/bin/perl
# The module's side of docs/PROTOCOL.md, with this test playing the worker
# (no sidecar): the job entry's fields, result delivery and status
# pass-through, Server-Timing from the result header, the result key read
# at the deadline and after a subscriber reconnect, garbage on the channel.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $STREAM = 'offload:{manual}:jobs';

start_redis();
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location = /jobs/manual { offload_pass manual; offload_timeout 10s; }
    location = /short/manual { offload_pass manual; offload_timeout 1s; }
}
HTTP
ok(wait_until(sub {
    my $ch = redis_cmd('PUBSUB', 'CHANNELS', 'offload:reply:*');
    ref $ch eq 'ARRAY' && @$ch == 2;
}, 10, 'both nginx workers subscribed'), 'nginx workers subscribed');
is(ref redis_cmd('XGROUP', 'CREATE', $STREAM, 'workers', '0', 'MKSTREAM'),
    '', 'consumer group created');

# Sends a POST on a raw socket; returns the socket (the request is parked).
# Takes the next job off the stream as consumer "tester": { entry, fields }.
sub take_job {
    my $r = redis_cmd('XREADGROUP', 'GROUP', 'workers', 'tester', 'COUNT', 1,
        'BLOCK', 5000, 'STREAMS', $STREAM, '>');
    return undef unless ref $r eq 'ARRAY';
    my ($entry, $kv) = @{ $r->[0][1][0] };
    return { entry => $entry, fields => { @$kv } };
}

# Reads the whole answer (the server closes); returns { status, headers,
# body, ms } with ms counted from $t0.
sub answer {
    my ($s, $t0, $timeout) = @_;
    my $resp = '';
    local $SIG{ALRM} = sub { die "no answer\n" };
    alarm($timeout // 15);
    eval { 1 while sysread($s, $resp, 65536, length $resp); alarm 0 };
    alarm 0;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () }
        split /\r\n/, $head // '';
    return { status => $status // 0, headers => \%h, body => $body // '',
        ms => (time - $t0) * 1000 };
}

sub result_key { "offload:{manual}:result:$_[0]" }

# ---- the job entry
my $t0 = time;
my $s = send_post('/jobs/manual', '{"q":[1,2]}');
my $job = take_job();
ok($job, 'the job is in the stream');
my $f = $job->{fields};
is($f->{v}, 1, 'v 1');
like($f->{id}, qr/^[0-9a-f]{32}$/, 'id: 32 hex');
like($f->{reply}, qr/^offload:reply:[0-9a-f]{16}$/,
    'reply channel is offload:reply:<nonce>');
is(substr($f->{id}, 0, 11), substr($f->{reply}, 14, 11),
    'the id begins with 11 of the nonce (then the slot tag, the sequence)');
is($f->{payload}, '{"q":[1,2]}', 'payload is the body verbatim');
is($f->{attempt}, 1, 'attempt 1');
ok(abs($f->{deadline} - $f->{submitted} - 10_000) <= 1,
    'deadline = submitted + offload_timeout');
ok(abs($f->{submitted} - $t0 * 1000) < 2000, 'submitted is wall-clock ms');
like($f->{rid}, qr/^[0-9a-f]{32}$/, 'rid is $request_id');
like($f->{tp}, qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
    'tp: a traceparent nginx started (no header)');
ok(!exists $f->{ts}, 'no ts without a tracestate');

# ---- a result published on the reply channel
my $result = "OR1 $f->{id} 200 1500 2250\n{\"ok\":true}";
redis_cmd('SET', result_key($f->{id}), $result, 'EX', 60);
is(redis_cmd('PUBLISH', $f->{reply}, $result), 1, 'one subscriber');
my $a = answer($s, $t0);
is($a->{status}, 200, 'answered 200');
is($a->{body}, '{"ok":true}', 'with the result body verbatim');
is($a->{headers}{'x-offload-job-id'}, $f->{id}, 'X-Offload-Job-Id');
is($a->{headers}{'server-timing'}, 'queue;dur=1.500, run;dur=2.250, '
    . "traceparent;desc=\"$f->{tp}\"",
    'Server-Timing from queue_us/run_us (an older sidecar: no CPU time)');
is($a->{headers}{traceparent}, $f->{tp},
    'traceparent: the span the job carried');
redis_cmd('XACK', $STREAM, 'workers', $job->{entry});

# ---- Server-Timing with CPU time: milliseconds with three decimals each
$s = send_post('/jobs/manual', '{}');
$job = take_job();
$f = $job->{fields};
redis_cmd('PUBLISH', $f->{reply}, "OR1 $f->{id} 200 5 1234567 10 0\n{}");
$a = answer($s, time);
is($a->{headers}{'server-timing'}, 'queue;dur=0.005, run;dur=1234.567, '
    . "cpu;dur=0.010, traceparent;desc=\"$f->{tp}\"",
    'Server-Timing with CPU time, each duration with three decimals');
redis_cmd('XACK', $STREAM, 'workers', $job->{entry});

# ---- other statuses pass through with their body
for my $st (422, 404, 400, 504) {
    $s = send_post('/jobs/manual', '{}');
    $job = take_job();
    my $id = $job->{fields}{id};
    my $body = qq({"error":{"code":"c$st","message":"m"}});
    redis_cmd('PUBLISH', $job->{fields}{reply}, "OR1 $id $st 1 2\n$body");
    $a = answer($s, time);
    is($a->{status}, $st, "result status $st passed through");
    is($a->{body}, $body, "result body of $st verbatim");
    redis_cmd('XACK', $STREAM, 'workers', $job->{entry});
}

# ---- a status below 200 (the sidecar never sends one, a consumer of its
# own may) would go out as an interim answer with a body behind it: 502
for my $st (101, 199) {
    $s = send_post('/jobs/manual', '{}');
    $job = take_job();
    my $id = $job->{fields}{id};
    redis_cmd('PUBLISH', $job->{fields}{reply},
        "OR1 $id $st 1 2\n{\"early\":1}");
    $a = answer($s, time);
    is($a->{status}, 502, "result status $st: 502");
    is((json_decode($a->{body}) // {})->{error}{code}, 'bad_result',
        "result status $st: bad_result") or diag($a->{body});
    redis_cmd('XACK', $STREAM, 'workers', $job->{entry});
}
like(slurp(nginx_error_log()), qr/has status 101, answered 502/,
    'nginx logs the status it refused');

# the same for a sync duplicate (Idempotency-Key), answered the first
# job's result from its record: the job ended as the completion script
# ends one, record done and result key set
my $raw = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $raw "POST /jobs/manual HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    . "Connection: close\r\nIdempotency-Key: status-101\r\n"
    . "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
$job = take_job();
my $early = "OR1 $job->{fields}{id} 101 1 2\n{\"early\":1}";
redis_cmd('SET', result_key($job->{fields}{id}), $early, 'EX', 60);
redis_cmd('HSET', record_key($job->{fields}{id}), 'status', 'done',
    'finished_at', int(time * 1000));
redis_cmd('PUBLISH', $job->{fields}{reply}, $early);
is(answer($raw, time)->{status}, 502, 'the first request: 502');
redis_cmd('XACK', $STREAM, 'workers', $job->{entry});
my $dup = http('POST', '/jobs/manual', '{}',
    { 'Idempotency-Key' => 'status-101' });
is($dup->{status}, 502, 'its duplicate, answered from the record: 502')
    or diag($dup->{status}, ' ', $dup->{content});
is(($dup->{json} // {})->{error}{code}, 'bad_result', 'bad_result');

# ---- garbage and pings on the channel are ignored; a result for an id
# that is not parked is dropped
$s = send_post('/jobs/manual', '{}');
$job = take_job();
my ($id, $reply) = @{ $job->{fields} }{qw(id reply)};
my $other = substr($id, 0, 16) . 'ffffffffffffff00';
for my $junk ('ping', 'garbage', '', "OR1 $id", "OR1 $id 200 x y\n{}",
    "OR9 $id 200 1 1\n{}", "OR1 $other 200 1 1\n{\"wrong\":1}",
    'OR1 ' . ('z' x 32) . " 200 1 1\n{}")
{
    redis_cmd('PUBLISH', $reply, $junk);
}
redis_cmd('PUBLISH', $reply, "OR1 $id 200 1 1\n{\"right\":1}");
$a = answer($s, time);
is($a->{status}, 200, 'after junk on the channel the real result is 200');
is($a->{body}, '{"right":1}', 'and its own body');

# ---- stored but never published: read from the key at the deadline
$t0 = time;
$s = send_post('/short/manual', '{}');
$job = take_job();
$id = $job->{fields}{id};
redis_cmd('SET', result_key($id), "OR1 $id 200 5 5\n{\"stored\":1}", 'EX', 60);
$a = answer($s, $t0);
is($a->{status}, 200, 'a stored, unpublished result is answered at the '
    . 'deadline');
is($a->{body}, '{"stored":1}', 'with its body');
ok($a->{ms} >= 900 && $a->{ms} < 2500, sprintf('at the deadline (%d ms)',
    $a->{ms}));

# ---- nothing stored: 504 at the deadline
$t0 = time;
$s = send_post('/short/manual', '{}');
$job = take_job();
$a = answer($s, $t0);
is($a->{status}, 504, 'nothing stored: 504 at the deadline');
like($a->{body}, qr/"code":"timeout"/, 'timeout');

# ---- an undecodable stored result: 502 bad_result
$s = send_post('/short/manual', '{}');
$job = take_job();
$id = $job->{fields}{id};
redis_cmd('SET', result_key($id), "OR1 $id 200 notanumber\n{}", 'EX', 60);
$a = answer($s, time);
is($a->{status}, 502, 'an undecodable stored result: 502');
like($a->{body}, qr/"code":"bad_result"/, 'bad_result');

# ---- the subscriber is killed: after resubscribing the module reads the
# result keys of its parked jobs
$t0 = time;
$s = send_post('/jobs/manual', '{}');
$job = take_job();
$id = $job->{fields}{id};
redis_cmd('SET', result_key($id), "OR1 $id 200 5 5\n{\"missed\":1}", 'EX',
    60);
my $killed = redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
ok($killed >= 1, "killed $killed subscriber connection(s)");
$a = answer($s, $t0);
is($a->{status}, 200, 'a result published while unsubscribed is found');
is($a->{body}, '{"missed":1}', 'with its body');
ok($a->{ms} < 5000, sprintf('long before the 10 s deadline (%d ms)',
    $a->{ms}));
ok(wait_until(sub {
    my $ch = redis_cmd('PUBSUB', 'CHANNELS', 'offload:reply:*');
    ref $ch eq 'ARRAY' && @$ch == 2;
}, 10, 'both subscribers back'), 'both nginx workers resubscribed');

finish();
