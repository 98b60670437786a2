#!/usr/bin/perl
# Prefer: wait=<s> on an async submit (RFC 7240 4.3, with respond-async or
# on an offload_mode async location): the request waits that long for its
# job to end and is answered as a sync request would be; a job that has not
# ended by then gets its 202 as before.  Elsewhere the preference changes
# nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue sleep { handler sleep; workers 1; }
queue sha256 { handler sha256; workers 1; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location ~ ^/short/([^/]+)$ {
        offload_pass $1;
        offload_mode async;
        offload_timeout 1s;
    }
    location /jobs/ { offload_jobs; }
    location = /metrics { offload_metrics; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}'), 'stack ready');
ok(wait_until(sub {
    (redis_cmd('PUBSUB', 'NUMSUB', 'offload:jobs:done')->[1] // 0) == 2;
}, 10, 'both workers hear the ends of jobs'), 'subscribed to job ends');

sub post {
    my ($path, $body, $prefer, %h) = @_;
    return http('POST', $path, $body, { Prefer => $prefer, %h });
}

sub job { http('GET', "/jobs/$_[0]" . ($_[1] // ''))->{json} // {} }

# a POST with Prefer, its answer read later (read_answer)
sub send_waiting {
    my ($path, $body, $prefer) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nPrefer: $prefer\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

sub records { map { /:([0-9a-f]{32})$/ ? $1 : () }
    @{ redis_cmd('KEYS', 'offload:job:*') } }

# ---- a job that ends within the wait: the sync answer
my $r = post('/async/echo', '{"w":1}', 'wait=5');
is($r->{status}, 200, 'async location, wait=5, a quick job: 200');
is_deeply($r->{json}, { w => 1 }, 'its result, as a sync request gets it');
my $id = $r->{headers}{'x-offload-job-id'} // '';
like($id, qr/^[0-9a-f]{32}$/, 'X-Offload-Job-Id names the job');
ok(!exists $r->{headers}{'idempotent-replayed'}, 'not Idempotent-Replayed');
ok(!exists $r->{headers}{'preference-applied'},
    'no Preference-Applied: the answer is not asynchronous');
ok(!exists $r->{headers}{location}, 'no Location');
is(job($id)->{status}, 'done', 'the job has its record: done');

$r = post('/sync/echo', '{"w":2}', 'respond-async, wait=5');
is($r->{status}, 200, 'sync location, respond-async, wait=5: 200');
is_deeply($r->{json}, { w => 2 }, 'its result');
# a value may be a quoted string, the same as the token it holds (RFC 7240
# 2: word = token / quoted-string; RFC 9110 5.6.6): wait="5" was taken for
# no wait, 202 at once
$r = post('/sync/echo', '{"w":"q"}', 'respond-async, wait="5"');
is($r->{status}, 200, 'respond-async, wait="5" (quoted): 200');
is_deeply($r->{json}, { w => 'q' }, 'its result');
$r = post('/sync/echo', '{"w":3}', 'respond-async', Prefer2 => 'x');
is($r->{status}, 202, 'respond-async without wait: 202 as before');

# two headers, and a wait with spaces around "=" (RFC 7240's BWS)
$r = http('POST', '/sync/echo', '{"w":4}',
    { Prefer => [ 'respond-async', 'wait = 5' ] });
is($r->{status}, 200, 'respond-async and wait in two Prefer headers: 200');

# a handler's error within the wait: as sync
$r = post('/async/sha256', '{"data":"abc","rounds":"x"}', 'wait=5');
is($r->{status}, 422, "a handler's error within the wait: its 422");
is($r->{json}{error}{code}, 'handler_error', 'handler_error');
like($r->{headers}{'x-offload-job-id'} // '', qr/^[0-9a-f]{32}$/,
    'with X-Offload-Job-Id');

# ---- a job longer than the wait: 202 once the wait passes
my $t0 = time;
$r = post('/sync/sleep', '{"ms":' . scaled(3000) . '}',
    'respond-async, wait=1');
my $took = time - $t0;
is($r->{status}, 202, 'a 3 s job, respond-async, wait=1: 202');
ok($took >= 0.95 && $took < scaled(2.5),
    sprintf('answered when the wait passed (%.2f s)', $took));
is($r->{json}{status}, 'running', 'status as it is then: running');
my $long = $r->{json}{id} // '';
is($r->{headers}{location}, "/jobs/$long", 'Location');
is($r->{headers}{'x-offload-job-id'}, $long, 'X-Offload-Job-Id');
is($r->{headers}{'preference-applied'}, 'respond-async',
    'Preference-Applied: respond-async');
is(job($long, '?wait=' . scaled(10))->{status}, 'done',
    'the job ends all the same');

# ---- a GET of a job with Prefer: wait, as ?wait
$r = post('/async/sleep', '{"ms":' . scaled(800) . '}', '');
my $polled = $r->{json}{id};
$t0 = time;
my $got = http('GET', "/jobs/$polled", undef,
    { Prefer => 'wait=' . scaled(10) });
is($got->{json}{status}, 'done',
    'GET with Prefer: wait=10: once the job ends');
ok(time - $t0 >= 0.5, 'it waited for it');
$r = post('/async/sleep', '{"ms":' . scaled(800) . '}', '');
$got = http('GET', "/jobs/$r->{json}{id}?wait=0", undef,
    { Prefer => 'wait=10' });
like($got->{json}{status}, qr/^(queued|running)$/,
    '?wait=0 and Prefer: wait=10: the URL wins');
is(job($r->{json}{id}, '?wait=' . scaled(10))->{status}, 'done', 'it ends');

# ---- a wait that passes while the job is still queued behind another
my $first = post('/async/sleep', '{"ms":' . scaled(1500) . '}', '');
is($first->{status}, 202, 'a sleep job ahead');
$r = post('/async/sleep', '{"ms":1}', 'wait=1');
is($r->{status}, 202, 'queued behind it, wait=1: 202');
is($r->{json}{status}, 'queued', 'status queued');

# ---- a job still queued at its deadline (offload_timeout 1s) when the wait
# passes: expired, it will never run
$first = post('/async/sleep', '{"ms":' . scaled(3000) . '}', '');
$r = post('/short/sleep', '{"ms":1}', 'wait=2');
is($r->{status}, 504, 'queued past its deadline when the wait passed: 504');
is($r->{json}{error}{code}, 'expired', 'expired');
is(job($first->{json}{id}, '?wait=' . scaled(10))->{status}, 'done',
    'the job ahead ends');

# ---- no wait: 0, not delta-seconds, on a sync answer
for my $case ([ 'wait=0', 'wait=0' ], [ 'wait=abc', 'wait not a number' ],
              [ 'wait=-1', 'wait negative' ], [ 'wait', 'wait without value' ],
              [ 'wait="abc"', 'wait quoted, not a number' ])
{
    my ($prefer, $name) = @$case;
    $t0 = time;
    $r = post('/async/sleep', '{"ms":' . scaled(1000) . '}', $prefer);
    is($r->{status}, 202, "$name: 202");
    ok(time - $t0 < scaled(0.8), "$name: at once");
}
$t0 = time;
$r = post('/sync/sleep', '{"ms":1500}', 'wait=1');
is($r->{status}, 200, 'sync location, wait without respond-async: sync');
ok(time - $t0 >= 1.4, 'it waited for the job, not for the preference');

# a wait over the long polls' 60 s counts as 60, however many its digits
for my $wait ('3600', '99999999999999999999') {
    $r = post('/async/sleep', '{"ms":300}', "wait=$wait");
    is($r->{status}, 200, "wait=$wait: 200 when the job ends");
}

# ---- an Idempotency-Key's duplicate that prefers to wait
my $key = "k$$";
$r = post('/async/sleep', '{"ms":' . scaled(500) . '}', '',
    'Idempotency-Key' => $key);
is($r->{status}, 202, 'keyed async job: 202');
my $keyed = $r->{json}{id};
$r = post('/async/sleep', '{"ms":' . scaled(500) . '}', 'wait=10',
    'Idempotency-Key' => $key);
is($r->{status}, 200, 'its duplicate, wait=10: the result');
is($r->{headers}{'x-offload-job-id'}, $keyed, 'the first job\'s id');
is($r->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed');

# ---- cancelled while the submit waits
$r = post('/async/sleep', '{"ms":' . scaled(1500) . '}', '');
my %before = map { $_ => 1 } records();
my $s = send_waiting('/async/sleep', '{"ms":1}', 'wait=10');
my $victim;
ok(wait_until(sub { ($victim) = grep { !$before{$_} } records(); $victim },
    scaled(5), 'the waiting job has its record'), 'a waiting submit, queued');
is(http('DELETE', "/jobs/$victim")->{status}, 200, 'cancelled meanwhile');
my $a = read_answer($s, scaled(10));
is($a->{status}, 409, 'the waiting submit: 409');
is($a->{json}{error}{code}, 'no_result', 'no_result');

# ---- a client that leaves while its submit waits: the job still runs, and
# the request counts as the client's 499
sub closed {
    my ($n) = http('GET', '/metrics')->{content}
        =~ /^offload_requests_total\{queue="sleep",status="499"\} (\d+)$/m;
    return $n // 0;
}
my $closed = closed();
%before = map { $_ => 1 } records();
$s = send_waiting('/async/sleep', '{"ms":300}', 'wait=10');
my $left;
ok(wait_until(sub { ($left) = grep { !$before{$_} } records(); $left },
    scaled(5), 'its record'), 'a waiting submit');
close $s;
is(job($left, '?wait=' . scaled(10))->{status}, 'done',
    'its client gone, the job ends done');
ok(wait_until(sub { closed() == $closed + 1 }, scaled(5), '499'),
    'counted as a 499 of its queue');
is(post('/sync/echo', '{}', '')->{status}, 200, 'nginx answers after it');

# ---- Redis stops answering while a submit waits: its 202 all the same
# (a 503 would tell the client nothing was queued), once nginx gives the
# link up
%before = map { $_ => 1 } records();
$s = send_waiting('/async/sleep', '{"ms":' . scaled(4000) . '}', 'wait=1');
# its record in Redis does not say nginx read the submit's reply (frozen
# before that, the answer is a right 503 outcome_unknown: 1 run of a
# loaded make test); a worker running it comes later
ok(wait_until(sub { grep({ !$before{$_} } records())
        && pending_jobs('sleep') == 1 }, scaled(5), 'queued'),
    'a waiting submit, queued and running');
kill 'STOP', redis_pid();
$a = read_answer($s, scaled(15));
kill 'CONT', redis_pid();
is($a->{status}, 202, 'Redis silent when the wait passed: 202');
like($a->{json}{id} // '', qr/^[0-9a-f]{32}$/, 'with the job\'s id');
ok(wait_until(sub { (job($a->{json}{id} // '-')->{status} // '') eq 'done' },
    scaled(20), 'job done'), 'and the job ends, once nginx has Redis again');

# ---- a Redis whose ends of jobs nginx does not hear (no offload_jobs
# location on it, offload_idempotency_ttl off) cannot wake a waiting
# submit: Prefer: wait is not applied there, the 202 comes at once
stop_nginx();
start_server_nginx(server => <<'SRV');
    offload_idempotency_ttl off;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
SRV
ok(wait_nginx_ready('/sync/echo', '{}'), 'nginx without offload_jobs');
$t0 = time;
$r = post('/async/sleep', '{"ms":300}', 'wait=5');
is($r->{status}, 202, 'Prefer: wait=5 there: 202');
ok(time - $t0 < scaled(0.8), 'at once');

finish();
