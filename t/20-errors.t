#!/usr/bin/perl
# Error answers: each one a status and {"error":{"code":..,"message":..}}.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue sha256 { handler sha256; workers 1; }
queue sleep { handler sleep; workers 2; }
CONF
my $h2_port = free_port();
my $conf = <<'HTTP';
limit_req_zone $binary_remote_addr zone=slow:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=slower:1m rate=1r/m;
server {
    listen 127.0.0.1:@H2_PORT@ http2;
    offload_redis @REDIS@;
    location = /denied/echo { offload_pass echo; deny all; }
}
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/(.+)$ {
        offload_pass $1;
        client_max_body_size 2k;
    }
    location = /denied/echo { offload_pass echo; deny all; }
    location /denied-jobs/ { offload_jobs; deny all; }
    location = /denied-status { offload_status; deny all; }
    location = /denied-metrics { offload_metrics; deny all; }
    location = /denied-dashboard { offload_dashboard; deny all; }
    location = /posts-only/echo {
        offload_pass echo;
        limit_except POST { deny all; }
    }
    location = /local-gets/echo {
        offload_pass echo;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
    location /local-jobs/ {
        offload_jobs;
        limit_except GET { allow 127.0.0.1; deny all; }
    }
    location = /iffy/echo {
        offload_pass echo;
        if ($http_x_debug) { set $debug 1; }
    }
    location = /local-posts/echo {
        offload_pass echo;
        limit_except GET { allow 127.0.0.1; deny all; }
    }
    location = /local-status {
        offload_status;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
    location = /local-metrics {
        offload_metrics;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
    location = /local-dashboard {
        offload_dashboard;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
    location = /iffy-status {
        offload_status;
        if ($http_x_debug) { set $debug 1; }
    }
    location = /limited/echo { offload_pass echo; limit_req zone=slow; }
    location = /limited429/echo {
        offload_pass echo;
        limit_req zone=slower;
        limit_req_status 429;
    }
    location = /chunky/echo {
        offload_pass echo;
        client_max_body_size 2m;
    }
    location = /unbounded/echo {
        offload_pass echo;
        client_max_body_size 0;
        client_body_buffer_size 64k;
    }
    location = /own-page/echo {
        offload_pass echo;
        client_max_body_size 1k;
        error_page 413 @own;
    }
    location @own { return 413 "own page"; }
    location = /plain { deny all; }
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
    location = /async/echo { offload_pass echo; offload_mode async; }
}
HTTP
start_nginx(http => $conf =~ s/\@H2_PORT\@/$h2_port/r);
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
# a lone surrogate escape: jansson, jq and Perl's JSON::PP refuse the
# whole text, so a handler in C, bash or Perl could not read the job to
# answer it (before: accepted, then 504 job_timeout)
$msg = error_is(http('POST', '/jobs/echo', '{"t":"a\\ud800b"}'), 400,
    'bad_json', 'a lone surrogate escape');
like($msg // '', qr/lone UTF-16 surrogate escape/, '... said so');
is(http('POST', '/jobs/echo', '{"t":"\\ud83d\\ude00"}')->{status}, 200,
    'a surrogate pair escape is taken');

# offload_validate_json off: the worker's parser rejects it instead
error_is(http('POST', '/novalidate/echo', '{bad'), 422, 'handler_error',
    'validate off, worker rejects');
error_is(http('POST', '/novalidate/echo', qq(["caf\xe9"])), 422,
    'handler_error', 'validate off: the worker rejects what is not UTF-8');
error_is(http('POST', '/novalidate/echo', ''), 400, 'bad_json',
    'validate off: an empty body is still no JSON text, refused at once');

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

# clients that leave right after their request, before the XADD's nil
# came back: nothing written for them either (their cancel made the
# cancelled set of a queue nobody serves); the client's close comes
# 0-0.5 ms after its request, a fault staged, not a wait
sub refused_or_gone {
    my $m = http('GET', '/metrics')->{content} // '';
    my %n = (404 => 0, 499 => 0);
    $n{$1} = $2 while $m
        =~ /^offload_invalid_requests_total\{status="(404|499)"\} (\d+)$/mg;
    return \%n;
}
sub eval_calls {
    (redis_cmd('INFO', 'commandstats') // '') =~ /^cmdstat_eval:calls=(\d+)/m
        ? $1 : 0;
}
my $before = refused_or_gone();
my $evals = eval_calls();
for my $i (1 .. 60) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "POST /jobs/left_$i HTTP/1.1\r\nHost: x\r\n"
        . "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    Time::HiRes::sleep(0.0001 * ($i % 6));
    close $s;
}
my $after;
ok(wait_until(sub {
    $after = refused_or_gone();
    $after->{404} + $after->{499} >= $before->{404} + $before->{499} + 60;
}, scaled(10), '60 gone clients counted'), '60 clients gone: counted');
# each one gone before its 404 sent a cancel (an EVAL): Redis ran them all
my $gone = $after->{499} - $before->{499};
ok(wait_until(sub { eval_calls() >= $evals + $gone }, scaled(10),
    'their cancels'), "the cancels of the $gone gone unanswered ran");
is_deeply(redis_cmd('KEYS', 'offload:{left_*'), [],
    'no key written for them');

# a request refused by its headers is not asked for its body: a client
# that waits for "100 Continue" gets the refusal instead (before: 100
# Continue, then the refusal once it had sent its body for nothing)
for my $case (
    [ 'GET', '/jobs/echo', '', 405, 'a GET' ],
    [ 'POST', '/jobs/bad%20name', '', 400, 'a bad queue name' ],
    [ 'POST', '/jobs/echo', "X-Offload-Timeout: abc\r\n", 400,
        'X-Offload-Timeout: abc' ],
    [ 'POST', '/jobs/echo', "Idempotency-Key: \r\n", 400,
        'an empty Idempotency-Key' ],
    [ 'POST', '/local-jobs/' . ('0' x 32), '', 405, 'a POST to offload_jobs' ],
    # (a limit the headers tell: it was asked for, then refused)
    [ 'POST', '/chunky/echo', "Idempotency-Key: k\r\n", 413,
        'an Idempotency-Key with a body over 1 MB', 1_500_000 ])
{
    my ($method, $path, $head, $status, $name, $length) = @$case;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "$method $path HTTP/1.1\r\nHost: x\r\n$head"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . ($length // 1000) . "\r\n"
        . "Expect: 100-continue\r\n\r\n";
    my $line = '';
    if (IO::Select->new($s)->can_read(scaled(5))) {
        sysread($s, $line, 4096);
    }
    like($line, qr{\AHTTP/1\.1 $status }, "$name, Expect: 100-continue: "
        . "$status at once, no 100 Continue") or diag($line);
    close $s;
}

# a GET of the status with a body it does not read: the body is never
# asked for either (it answered "100 Continue" first)
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "GET /iffy-status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        . "Expect: 100-continue\r\nConnection: close\r\n\r\n";
    my $line = '';
    if (IO::Select->new($s)->can_read(scaled(5))) {
        sysread($s, $line, 4096);
    }
    like($line, qr{\AHTTP/1\.1 200 }, 'the status with a body and Expect: '
        . '100-continue: 200 at once, no 100 Continue') or diag($line);
    close $s;
}

# ---- 405
for my $method (qw(GET PUT DELETE)) {
    my $r = http($method, '/jobs/echo', $method eq 'GET' ? undef : '{}');
    error_is($r, 405, 'method_not_allowed', $method);
    is($r->{headers}{allow}, 'POST', "$method: Allow: POST");
}

# ---- nginx's own errors in an offload location: JSON, not its HTML page
# (ngx_http_offload_errors.c)
error_is(http('POST', '/jobs/echo', '"' . ('x' x 3000) . '"'), 413,
    'too_large', 'Content-Length over client_max_body_size');
# the metrics answer is cached a heartbeat long; the Idempotency-Key's
# 413 above is the other one
ok(wait_until(sub { (http('GET', '/metrics')->{content} // '')
        =~ /offload_invalid_requests_total\{status="413"\} 2\b/ },
        scaled(5), '413 counted'),
    'counted as an invalid request, as the module\'s own errors are');

# Sends $request on a new connection, returns all the server wrote back.
sub raw_exchange {
    my ($request) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s $request;
    return read_raw($s, scaled(10));
}

# Sends $head and $body, returns the parsed answer.
sub raw_answer {
    my ($head, $body) = @_;
    my $raw = raw_exchange("$head\r\n$body");
    my $r = parse_response(\$raw) // { status => 0, headers => {} };
    $r->{json} = eval { json_decode($r->{content}) };
    return $r;
}

my $chunked = "POST /jobs/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
error_is(raw_answer($chunked, "zz\r\n{}\r\n0\r\n\r\n"), 400,
    'bad_request', 'a malformed chunked body');
# a chunked body under client_max_body_size in small chunks: nginx reads
# their framing into the body's buffer too (before: 500 internal, and the
# error log blamed the configuration)
my $in_chunks = sub {
    my ($body, $size) = @_;
    return join('', map { sprintf("%x\r\n", length) . "$_\r\n" }
        unpack("(a$size)*", $body)) . "0\r\n\r\n";
};
(my $chunky = $chunked) =~ s{^POST /jobs/echo }{POST /chunky/echo };
my $text = '"' . ('c' x 1_999_998) . '"';
my $small_chunks = raw_answer($chunky, $in_chunks->($text, 50));
is($small_chunks->{status}, 200, 'a 2,000,000-byte body (2m allowed) in '
    . '50-byte chunks: the job') or diag($small_chunks->{content});
ok(($small_chunks->{content} // '') eq $text,
    'in 50-byte chunks: its bytes back');
$msg = error_is(raw_answer($chunky, $in_chunks->($text, 4)), 413,
    'too_large', 'the same in 4-byte chunks (4.5 MB on the wire)');
like($msg // '', qr/chunk/, 'too_large: says the chunks are why');
error_is(raw_answer($chunked, join('', map { "400\r\n" . ('x' x 1024)
    . "\r\n" } 1 .. 3) . "0\r\n\r\n"), 413, 'too_large',
    'a chunked body over client_max_body_size');

# client_max_body_size 0: the buffer is the limit, refused as any other
# (before: a body over it was written to a temporary file, however big,
# then answered 500 "request body not in memory")
my $over = '"' . ('u' x 100_000) . '"';
error_is(http('POST', '/unbounded/echo', $over), 413, 'too_large',
    'client_max_body_size 0, a body over the 64k buffer: 413');
(my $unbounded = $chunked) =~ s{^POST /jobs/echo }{POST /unbounded/echo };
error_is(raw_answer($unbounded, $in_chunks->($over, 8192)), 413,
    'too_large', '... chunked: 413 too');
my $under = '"' . ('u' x 60_000) . '"';
my $fits = http('POST', '/unbounded/echo', $under);
is($fits->{status}, 200, '... a body under the buffer: the job');
ok(($fits->{content} // '') eq $under, '... its bytes back');
unlike(slurp(nginx_error_log()), qr/not in memory|client_body_in_file_only/,
    'no body went to a file');

my $r = http('POST', '/denied/echo', '{}');
error_is($r, 403, 'forbidden', 'deny all');
ok($r->{headers}{traceparent}, 'deny all: traceparent, as every answer');
error_is(http('GET', '/denied-jobs/0'), 403, 'forbidden',
    'deny all on offload_jobs');
error_is(http('GET', '/denied-status'), 403, 'forbidden',
    'deny all on offload_status');
# Prometheus text and a browser's page keep nginx's own
for my $report (qw(metrics dashboard)) {
    $r = http('GET', "/denied-$report");
    is($r->{status}, 403, "deny all on offload_$report: 403");
    like($r->{headers}{'content-type'} // '', qr{^text/html},
        "deny all on offload_$report: nginx's page");
}
$r = http('GET', '/posts-only/echo');
error_is($r, 403, 'forbidden', 'limit_except POST { deny all; }, a GET');
ok($r->{headers}{traceparent}, 'limit_except, a GET: traceparent');

# the blocks inside a location are that location: offload_pass and
# offload_jobs answer what they let by, with the location's queue
$r = http('GET', '/local-gets/echo');
error_is($r, 405, 'method_not_allowed',
    'limit_except POST { allow 127.0.0.1; ... }, a GET let by');
is($r->{headers}{allow}, 'POST', 'a GET let by: Allow: POST');
error_is(http('DELETE', '/local-jobs/' . ('0' x 32)), 404, 'unknown_job',
    'offload_jobs, limit_except GET { allow 127.0.0.1; ... }, a DELETE');
# a wait longer than any count is the longest wait (before: 400 bad_wait)
error_is(http('GET', '/local-jobs/' . ('0' x 32) . '?wait='
    . ('9' x 30)), 404, 'unknown_job', 'an unknown job, ?wait= of 30 digits');
$r = http('POST', '/iffy/echo', '{"if":1}', { 'X-Debug' => 1 });
is($r->{status}, 200, 'an if block in an offload_pass location: the job');
is_deeply($r->{json}, { if => 1 }, 'an if block: its result');
my $held = '"' . ('h' x 100_000) . '"';     # over client_body_buffer_size
$r = http('POST', '/local-posts/echo', $held);
is($r->{status}, 200, 'limit_except GET { allow 127.0.0.1; ... }, a POST '
    . 'let by: the job');
ok(($r->{content} // '') eq $held, 'a 100 KB POST let by: its bytes back');
# a method a report does not answer: 405 with the Allow header RFC 9110
# requires (before: none), as JSON on offload_status, nginx's page on the
# others
for my $report (qw(status metrics dashboard)) {
    $r = http('POST', "/local-$report", '{}');
    is($r->{status}, 405, "offload_$report, a POST let by: 405");
    is($r->{headers}{allow}, 'GET, HEAD',
        "offload_$report, a POST let by: Allow: GET, HEAD");
}
error_is(http('PUT', '/local-status', '{}'), 405, 'method_not_allowed',
    'offload_status, a PUT let by: JSON');
$r = http('GET', '/iffy-status', undef, { 'X-Debug' => 1 });
is($r->{status}, 200, 'an if block in an offload_status location: 200');
ok(ref $r->{json} eq 'HASH' && $r->{json}{nodes},
    'an if block in an offload_status location: the status');
# and a report's location answers the report to what its block lets by
# (nginx's static handler answered 404 before)
$r = http('GET', '/local-status');
is($r->{status}, 200, 'offload_status, limit_except POST { allow '
    . '127.0.0.1; ... }, a GET let by: 200');
ok(ref $r->{json} eq 'HASH' && $r->{json}{nodes},
    'offload_status, a GET let by: the status');
$r = http('GET', '/local-metrics');
is($r->{status}, 200, 'offload_metrics, a GET let by: 200');
like($r->{content} // '', qr/^offload_requests_total/m,
    'offload_metrics, a GET let by: the metrics');
$r = http('GET', '/local-dashboard');
is($r->{status}, 200, 'offload_dashboard, a GET let by: 200');
like($r->{content} // '', qr{<title>offload</title>},
    'offload_dashboard, a GET let by: the page');
is(http('POST', '/posts-only/echo', '{}')->{status}, 200,
    'limit_except POST { deny all; }, a POST: the job');

# HEAD: the headers of the JSON error, no body after them
my ($head, $body) = split /\r\n\r\n/, raw_exchange(
    "HEAD /denied/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 2;
like($head // '', qr{\AHTTP/1\.1 403 }, 'HEAD, deny all: 403');
like($head // '', qr{\r\nContent-Type: application/json}i,
    'HEAD, deny all: JSON type');
is($body, '', 'HEAD, deny all: no body');

# a job's answer is no resource's state: no 412 after it ran
$r = http('POST', '/jobs/echo', '{"cond":1}',
    { 'If-Unmodified-Since' => 'Thu, 01 Jan 1970 00:00:01 GMT',
      'If-Match' => '"x"' });
is($r->{status}, 200, 'If-Unmodified-Since and If-Match: the job answered');
is_deeply($r->{json}, { cond => 1 }, 'If-Unmodified-Since: its result');

is(http('POST', '/limited/echo', '{}')->{status}, 200,
    'limit_req: the first job passes');
$r = http('POST', '/limited/echo', '{}');
error_is($r, 503, 'unavailable', 'limit_req over its rate');
is($r->{headers}{'retry-after'}, 1, 'limit_req 503: Retry-After: 1');
is(http('POST', '/limited429/echo', '{}')->{status}, 200,
    'limit_req 429: the first job passes');
error_is(http('POST', '/limited429/echo', '{}'), 429, 'too_many_requests',
    'limit_req_status 429');

# each of those counted under its own status (before: 403, 429 and an
# async job's 202 were all status="other")
is(http('POST', '/async/echo', '{}')->{status}, 202, 'an async job: 202');
my $counted;
ok(wait_until(sub {
        $counted = http('GET', '/metrics')->{content} // '';
        $counted =~ /^offload_requests_total\{queue="echo",status="202"\} 1$/m
    }, scaled(5), '202 counted'), 'an async job counted as status="202"');
like($counted, qr/^offload_invalid_requests_total\{status="429"\} 1$/m,
    'limit_req_status 429 counted as status="429"');
like($counted, qr/^offload_invalid_requests_total\{status="403"\} [1-9]/m,
    'deny counted as status="403"');

$r = http('POST', '/own-page/echo', '"' . ('x' x 2000) . '"');
is($r->{status}, 413, "the location's own error_page: its status");
is($r->{content}, 'own page', "the location's own error_page: its body");
$r = http('GET', '/plain');
is($r->{status}, 403, 'deny all outside offload locations: 403');
like($r->{headers}{'content-type'} // '', qr{^text/html},
    "deny all outside offload locations: nginx's own page");

# a GET: nginx 1.22 resets an HTTP/2 stream whose body it did not read, and
# curl, still sending it, often calls that a framing error
my $curl = "curl -sS --http2-prior-knowledge --max-time 10 "
    . "-w '\\n%{http_version}:%{http_code}:%{content_type}' "
    . "http://127.0.0.1:$h2_port/denied/echo 2>&1";
my $out = `$curl`;
like($out,
    qr/\A\{"error":\{"code":"forbidden",.*\}\}\n2:403:application\/json\z/,
    'HTTP/2, deny all: the JSON error, its stream ended')
    or diag("$out (curl: $?)");

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
$r = post_json('/short/sleep', { ms => 3000 });
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
