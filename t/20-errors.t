#!/usr/bin/perl
# Error answers: each one a status and {"error":{"code":..,"message":..}}.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue sha256 { handler sha256; workers 1; }
queue sleep { handler sleep; workers 2; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/(.+)$ {
        offload_pass $1;
        client_max_body_size 2k;
    }
    location = /short/sleep {
        offload_pass sleep;
        offload_timeout 1s;
    }
    location = /infile/echo {
        offload_pass echo;
        client_body_in_file_only on;
    }
    location = /novalidate/echo {
        offload_pass echo;
        offload_validate_json off;
    }
    location = /metrics { offload_metrics; }
}
HTTP
ok(wait_nginx_ready('/jobs/echo', '{}'), 'stack ready');

# Checks status, JSON content type and the error body's shape.
sub error_is {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status") or diag($r->{content});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$name: Content-Type");
    my $e = ref $r->{json} eq 'HASH' && $r->{json}{error};
    ok(ref $e eq 'HASH', "$name: {\"error\":{...}} body")
        or diag($r->{content});
    is($e && $e->{code}, $code, "$name: code $code");
    ok($e && defined $e->{message} && length $e->{message},
        "$name: has a message");
    is_deeply([ sort keys %{ $e || {} } ], [qw(code message)],
        "$name: exactly code and message");
    return $e && $e->{message};
}

# ---- 400 bad_json
my $msg = error_is(http('POST', '/jobs/echo', '{"a":1,}'), 400, 'bad_json',
    'trailing comma');
like($msg // '', qr/\b7\b|offset/i, 'bad_json message names the offset');
error_is(http('POST', '/jobs/echo', '{"a":1} x'), 400, 'bad_json',
    'trailing garbage');
error_is(http('POST', '/jobs/echo', ''), 400, 'bad_json', 'empty body');
error_is(http('POST', '/jobs/echo', '[' x 600 . ']' x 600), 400, 'bad_json',
    'nesting deeper than 512');
$msg = error_is(http('POST', '/jobs/echo', qq(["caf\xe9"])), 400, 'bad_json',
    'a string that is not UTF-8 (Latin-1)');
like($msg // '', qr/UTF-8/, 'bad_json: says UTF-8');
error_is(http('POST', '/jobs/echo', qq(["\xed\xa0\x80"])), 400, 'bad_json',
    'a UTF-8 surrogate');

# offload_validate_json off: the worker's parser rejects it instead
error_is(http('POST', '/novalidate/echo', '{bad'), 422, 'handler_error',
    'validate off, worker rejects');
error_is(http('POST', '/novalidate/echo', qq(["caf\xe9"])), 422,
    'handler_error', 'validate off: the worker rejects what is not UTF-8');

# ---- 400 bad_queue
error_is(http('POST', '/jobs/bad!name', '{}'), 400, 'bad_queue',
    'bad character in queue name');
error_is(http('POST', '/jobs/bad%20name', '{}'), 400, 'bad_queue',
    'space in queue name');
error_is(http('POST', '/jobs/' . ('q' x 65), '{}'), 400, 'bad_queue',
    '65-character queue name');

# ---- 404 unknown_queue: no worker ever made the stream (or it was deleted);
# nothing is written to Redis and no metrics slot is taken
my @names = map { "nobody_serves_this_$_" } 1 .. 20;
my @ms;
for my $name (@names) {
    my $r = http('POST', "/jobs/$name", '{"fill":"redis"}');
    push @ms, $r->{ms};
    error_is($r, 404, 'unknown_queue', $name) if $name eq $names[0];
    is($r->{status}, 404, "$name: 404") unless $name eq $names[0];
}
@ms = sort { $a <=> $b } @ms;
ok($ms[-1] < 1000, 'answered at once, not at offload_timeout');
diag(sprintf 'unknown queue: 404 in %.1f ms median, %.1f ms max',
    $ms[@ms / 2], $ms[-1]);
is(scalar(grep { redis_cmd('EXISTS', "offload:{$_}:jobs") } @names), 0,
    'no stream created for them');
redis_cmd('XGROUP', 'CREATE', 'offload:{gone}:jobs', 'workers', '$',
    'MKSTREAM');
redis_cmd('DEL', 'offload:{gone}:jobs');
error_is(http('POST', '/jobs/gone', '{}'), 404, 'unknown_queue',
    'a queue whose stream was deleted');
is(redis_cmd('EXISTS', 'offload:{gone}:jobs'), 0, 'and it stays deleted');
my $metrics = http('GET', '/metrics')->{content} // '';
unlike($metrics, qr/nobody_serves_this|queue="gone"/,
    'no metrics slot taken by an unknown queue');
like($metrics, qr/offload_invalid_requests_total\{status="404"\} 21\b/,
    'counted among the requests without a queue, by status');

# ---- 405
for my $method (qw(GET PUT DELETE)) {
    my $r = http($method, '/jobs/echo', $method eq 'GET' ? undef : '{}');
    error_is($r, 405, 'method_not_allowed', $method);
    is($r->{headers}{allow}, 'POST', "$method: Allow: POST");
}

# ---- 413 (from nginx itself)
is(http('POST', '/jobs/echo', '"' . ('x' x 3000) . '"')->{status}, 413,
    '413 over client_max_body_size');

# ---- 500: the body went to a temp file, the module does no file I/O
error_is(http('POST', '/infile/echo', '{}'), 500, 'internal',
    'client_body_in_file_only on');

# ---- 422 handler_error
$msg = error_is(post_json('/jobs/sha256', { data => 'abc', rounds => 'x' }),
    422, 'handler_error', 'sha256 rounds "x"');
like($msg // '', qr/rounds/, 'message names the bad field');
error_is(post_json('/jobs/sha256', { rounds => 1 }), 422, 'handler_error',
    'sha256 without data');

# ---- 504 timeout
my $t0 = time;
my $r = post_json('/short/sleep', { ms => 3000 });
my $ms = (time - $t0) * 1000;
error_is($r, 504, 'timeout', 'offload_timeout 1s, sleep 3000');
ok($ms >= 900 && $ms < 2500, sprintf('answered at the deadline (%d ms)', $ms));

# the late result of that job is dropped, and the worker moves on
ok(wait_until(sub {
    my $keys = redis_cmd('KEYS', 'offload:{sleep}:result:*');
    ref $keys eq 'ARRAY' && @$keys >= 1;
}, 10, 'the timed-out sleep job completes'), 'late result stored');
$r = post_json('/jobs/sleep', { ms => 1 });
is($r->{status}, 200, 'sleep queue still works');

# ---- a job whose deadline passed while it waited is not run: both sleep
# workers busy past the 1 s timeout, a third job is answered 504 by the
# module and completed as "expired" by the worker that takes it later
my @socks = map { send_post('/short/sleep', '{"ms":1500}') } 1 .. 2;
ok(wait_until(sub { pending_jobs('sleep') == 2 }, 5,
    'both sleep workers busy'), 'both sleep workers busy');
push @socks, send_post('/short/sleep', '{"ms":1}');
for my $i (0 .. 2) {
    local $/;
    my $resp = readline($socks[$i]) // '';
    like($resp, qr{^HTTP/1\.1 504}, "busy workers: job $i answered 504");
}
ok(wait_until(sub {
    my $keys = redis_cmd('KEYS', 'offload:{sleep}:result:*');
    grep { (redis_cmd('GET', $_) // '') =~ /^OR1 \S+ 504 .*"expired"/s }
        @{ ref $keys eq 'ARRAY' ? $keys : [] };
}, 10, 'an expired result stored'), 'the late job was completed as expired, '
    . 'not run');

is(post_json('/short/sleep', { ms => 10 })->{status}, 200,
    'a job within the timeout is 200');

finish();
