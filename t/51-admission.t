#!/usr/bin/perl
# Admission control: X-Offload-Timeout (shorter deadlines, clamped longer
# ones, 400 bad_timeout), offload_max_backlog (503 queue_full with a
# Retry-After, no overshoot under concurrent posts, accepted again once
# drained), and 503 no_workers for a queue no live node serves any more
# (sidecar stopped, node drained; nginx reloaded since) while a queue never
# served keeps 404.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

my $SIDECAR = <<'CONF';
queue echo { handler echo; workers 1; }
queue slow { handler sleep; workers 2; }
queue sleep { handler sleep; workers 1; prefetch 1; }
CONF

start_redis();
start_sidecar(conf => $SIDECAR);
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/(.+)$ {
        offload_pass $1;
        offload_timeout 3s;
    }
    location = /full/sleep {
        offload_pass sleep;
        offload_max_backlog 3;
    }
    location = /long/sleep { offload_pass sleep; }
    location = /full/echo {
        offload_pass echo;
        offload_max_backlog 3;
    }
    location = /full/nosuch {
        offload_pass nosuch;
        offload_max_backlog 3;
    }
}
HTTP
ok(wait_nginx_ready('/jobs/echo', '{}'), 'stack ready');

sub code_of { my ($r) = @_; ref $r->{json} eq 'HASH'
    && ref $r->{json}{error} eq 'HASH' ? $r->{json}{error}{code} : '' }

# The newest entry of a queue's stream, while a worker runs it.
sub running_entry {
    my ($queue) = @_;
    my $e;
    wait_until(sub { $e = stream_entries("offload:{$queue}:jobs")->[-1] },
        scaled(5), "an entry of $queue");
    return $e;
}

# ---- X-Offload-Timeout
my $sleep = json_encode({ ms => 4000 });
my $r = http('POST', '/jobs/slow', $sleep, { 'X-Offload-Timeout' => '0.5' });
is($r->{status}, 504, 'X-Offload-Timeout 0.5: 504') or diag($r->{content});
is(code_of($r), 'timeout', '... code timeout');
cmp_ok($r->{ms}, '>=', 450, "... not before 0.5 s ($r->{ms} ms)");
cmp_ok($r->{ms}, '<', scaled(1500), '... about then, not at offload_timeout');
my $e = running_entry('slow');
is($e->{deadline} - $e->{submitted}, 500, "the job's deadline is 0.5 s too");

$r = http('POST', '/jobs/slow', $sleep, { 'X-Offload-Timeout' => '100' });
is($r->{status}, 504, 'X-Offload-Timeout 100 over offload_timeout 3s: 504');
cmp_ok($r->{ms}, '>=', 2950, "... clamped to 3 s, not before ($r->{ms} ms)");
cmp_ok($r->{ms}, '<', scaled(4500), '... nor much after');
$e = stream_entries('offload:{slow}:jobs')->[-1];
is($e && $e->{deadline} - $e->{submitted}, 3000, "... the job's too");

$r = http('POST', '/jobs/echo', '{"a":1}', { 'X-Offload-Timeout' => '2.5' });
is($r->{status}, 200, 'X-Offload-Timeout 2.5: a fast job answers 200');

for my $bad ('abc', '0', '0.000', '-1', '1.2345', '1e3', ' ', '2s') {
    $r = http('POST', '/jobs/echo', '{}', { 'X-Offload-Timeout' => $bad });
    is($r->{status}, 400, "X-Offload-Timeout '$bad': 400");
    is(code_of($r), 'bad_timeout', '... code bad_timeout');
}

# longer than any count is longer than offload_timeout: clamped too
# (before: 400 bad_timeout, too big for ngx_atofp)
$r = http('POST', '/jobs/echo', '{"b":1}',
    { 'X-Offload-Timeout' => '99999999999999999999999.5' });
is($r->{status}, 200, 'X-Offload-Timeout of 23 digits: clamped, the job')
    or diag($r->{content});

# given twice: neither is taken (before: the first, the second unread)
my $twice = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $twice "POST /jobs/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "X-Offload-Timeout: 9\r\nX-Offload-Timeout: abc\r\n"
    . "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
$r = read_answer($twice, scaled(10));
is($r->{status}, 400, 'X-Offload-Timeout given twice: 400');
is(code_of($r), 'bad_timeout', '... code bad_timeout');

# ---- offload_max_backlog
# one worker, prefetch 1: a long job holds it, the rest waits in the queue
my $busy = send_post('/full/sleep', json_encode({ ms => scaled(4000) }));
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'busy'),
    'the only sleep worker is busy');

my @socks = map { send_post('/full/sleep', '{"ms":0}') } 1 .. 8;
my @answers = map { read_answer($_, scaled(30)) } @socks;
my %by = ();
$by{ $_->{status} }++ for @answers;
is($by{200} // 0, 3, '8 concurrent posts at max_backlog 3: 3 accepted')
    or diag(explain(\%by));
is($by{503} // 0, 5, '... 5 refused, none beyond the limit');
is(code_of((grep { $_->{status} == 503 } @answers)[0] // {}), 'queue_full',
    '... with queue_full');
is(read_answer($busy, scaled(30))->{status}, 200, 'the long job is answered');

# full again, to look at one refusal closely
$busy = send_post('/full/sleep', json_encode({ ms => scaled(4000) }));
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'busy'),
    'the worker is busy again');
@socks = map { send_post('/full/sleep', '{"ms":0}') } 1 .. 3;
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{sleep}:jobs') == 4 },
    scaled(5), 'backlog 3'), 'three jobs wait behind it');
my $t0 = time;
$r = http('POST', '/full/sleep', '{"ms":0}');
is($r->{status}, 503, 'the next job: 503') or diag($r->{content});
is(code_of($r), 'queue_full', '... queue_full');
cmp_ok((time - $t0) * 1000, '<', scaled(1000), '... at once');
my $retry = $r->{headers}{'retry-after'} // '';
like($retry, qr/^\d+$/, "... Retry-After: $retry");
ok($retry >= 1 && $retry <= 30, '... from 1 to 30 s');
is(redis_cmd('XLEN', 'offload:{sleep}:jobs'), 4, '... and it was not queued');
is(read_answer($busy, scaled(30))->{status}, 200, 'the long job ends');
is(read_answer($_, scaled(30))->{status}, 200, 'a queued job is answered')
    for @socks;
ok(wait_until(sub { http('POST', '/full/sleep', '{"ms":0}')->{status}
    == 200 }, scaled(5), 'accepted'), 'drained: jobs are accepted again');

# a queue that drains: Retry-After follows the rate its node finishes jobs
my @steady = map { send_post('/long/sleep', '{"ms":100}') } 1 .. 30;
my $ra;
ok(wait_until(sub {
    my $x = http('POST', '/full/sleep', '{"ms":0}');
    $ra = $x->{headers}{'retry-after'};
    $x->{status} == 503 && $ra < 30 }, scaled(6), 'a rate'),
    'a queue that drains: queue_full with a shorter Retry-After');
ok(defined $ra && $ra >= 1 && $ra < 30,
    "... from the drain rate: Retry-After: " . ($ra // 'none'));
is(read_answer($_, scaled(30))->{status}, 200, 'a steady job is answered')
    for @steady;

# a queue whose jobs run at once never fills; an unknown one is still 404
is(http('POST', '/full/echo', '{}')->{status}, 200,
    'max_backlog: an empty queue takes jobs');
$r = http('POST', '/full/nosuch', '{}');
is($r->{status}, 404, 'max_backlog: a queue nobody serves is 404');
is(code_of($r), 'unknown_queue', '... unknown_queue');

# the script is loaded again after SCRIPT FLUSH (NOSCRIPT, then EVAL)
redis_cmd('SCRIPT', 'FLUSH');
is(http('POST', '/full/echo', '{}')->{status}, 200,
    'after SCRIPT FLUSH: 200 (EVAL after NOSCRIPT)');

# ---- no_workers
# a stream made by hand, never served by a node: waits out its deadline
is(redis_cmd('XGROUP', 'CREATE', 'offload:{handmade}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a stream no node ever served');
$r = http('POST', '/jobs/handmade', '{}', { 'X-Offload-Timeout' => '0.3' });
is($r->{status}, 504, '... its jobs wait (504), not no_workers');

# the node drained: every worker of echo paused
redis_cmd('SET', 'offload:{ctl}:drain:' . node_name(), 1);
$t0 = time;
ok(wait_until(sub { code_of(http('POST', '/jobs/echo', '{}', undef, 1))
    eq 'no_workers' }, scaled(5), 'no_workers'), 'node drained: no_workers');
cmp_ok(time - $t0, '<', scaled(3), '... within 3 s');
$r = http('POST', '/jobs/echo', '{}');
is($r->{status}, 503, '... a 503');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '... with Retry-After');
cmp_ok($r->{ms}, '<', scaled(1000), '... at once');
redis_cmd('DEL', 'offload:{ctl}:drain:' . node_name());
ok(wait_until(sub { http('POST', '/jobs/echo', '{}', undef, 2)->{status}
    == 200 }, scaled(5), 'resumed'), 'resumed: 200 again');

# the sidecar stopped: its node left the registry
stop_sidecar();
$t0 = time;
ok(wait_until(sub { code_of(http('POST', '/jobs/echo', '{}', undef, 1))
    eq 'no_workers' }, scaled(5), 'no_workers'), 'sidecar gone: no_workers');
my $took = time - $t0;
cmp_ok($took, '<', scaled(2.5), sprintf('... within %.2f s', $took));
$r = http('POST', '/jobs/nosuch', '{}');
is($r->{status}, 404, 'a queue never served is still 404 unknown_queue');

# nginx reloaded meanwhile: its new workers never saw a node list echo, but
# the nodes' stamp of the queues they served says it had one (what status
# calls unserved); its jobs are refused as before, not left to wait for
# nobody until offload_timeout
# SIGHUP to nginx; true once none of its workers is one of before
sub reloaded {
    my %old = map { $_ => 1 } nginx_worker_pids();
    kill 'HUP', nginx_pid();
    return wait_until(sub { my @w = nginx_worker_pids();
        @w && !grep { $old{$_} } @w }, scaled(10), 'new nginx workers');
}

# true once six jobs in a row to $queue were refused no_workers (each
# nginx worker reads the registry on its own)
sub refused {
    my ($queue) = @_;
    return wait_until(sub { !grep { code_of(http('POST', "/jobs/$queue",
        '{}', undef, 1)) ne 'no_workers' } 1 .. 6 }, scaled(5),
        "$queue refused");
}

ok(reloaded(), 'nginx reloaded: new workers');
ok(refused('echo'), 'reloaded, sidecar still gone: no_workers');
my $xlen = redis_cmd('XLEN', 'offload:{echo}:jobs');
$r = http('POST', '/jobs/echo', '{}');
is($r->{status}, 503, '... a 503');
cmp_ok($r->{ms}, '<', scaled(1000), '... at once');
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), $xlen,
    '... and no job waits in the stream for nobody');
is(http('POST', '/jobs/nosuch', '{}')->{status}, 404,
    '... a queue never served still 404');
# a queue retired with its stream: to nginx workers started since, it is
# unknown, as to status (not no_workers for the week of its stamp)
redis_cmd('DEL', 'offload:{echo}:jobs');
ok(reloaded(), 'nginx reloaded again');
ok(refused('slow'), '... the new workers read the registry: slow, its '
    . 'stream kept, no_workers');
ok(!grep({ http('POST', '/jobs/echo', '{}', undef, 1)->{status} != 404 }
    1 .. 6), '... echo, its stream deleted: 404 unknown_queue');
start_sidecar(conf => $SIDECAR);
ok(wait_until(sub { http('POST', '/jobs/echo', '{}', undef, 2)->{status}
    == 200 }, scaled(5), 'back'), 'sidecar back: 200 again');

finish();
