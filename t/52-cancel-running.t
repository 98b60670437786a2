#!/usr/bin/perl
# offload_cancel_running: DELETE /jobs/<id> of a running async job stops
# its worker (SIGKILL from the supervisor, which starts another) and the
# job ends cancelled: its long polls wake, it is not retried, not dead-
# lettered, not counted as a crash, and never runs again.  Without the
# directive a running job cannot be cancelled (409).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $py = '/usr/bin/python3';
my $count = "$py $FindBin::Bin/exec/retry_count.py";

start_redis();
start_sidecar(conf => <<"CONF");
queue echo { handler echo; workers 1; }
queue runs { handler exec; workers 1; command "$count"; max_attempts 3; }
queue hold { handler sleep; workers 1; }
queue once { handler exec; workers 1; command "$count"; max_attempts 1; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    offload_timeout 30s;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ { offload_jobs; }
    location /stop/ { offload_jobs; offload_cancel_running on; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}'), 'stack ready');
# the registry lists a worker once forked; it makes its queue's stream
# once connected (XGROUP CREATE MKSTREAM), later on a loaded machine, and
# a job to the queue before that is 503 no_workers (404 unknown_queue
# before nginx has read a registry that lists it)
ok(wait_until(sub {
    !grep { !redis_cmd('EXISTS', "offload:{$_}:jobs") } qw(runs hold once)
}, scaled(10), 'the streams'), 'every queue\'s worker made its stream');

my $runs = tmpdir() . '/runs.log';
sub ran { [ map { (split ' ')[0] } split /\n/, slurp($runs) // '' ] }
sub worker { (node_doc() || {})->{queues}{runs}{workers}[0] || {} }
sub record { +{ @{ redis_cmd('HGETALL', record_key($_[0])) } } }

my $r = post_json('/async/runs', { log => $runs, sleep => 30 });
is($r->{status}, 202, 'a 30 s job submitted');
my $id = $r->{json}{id} // '';
ok(wait_until(sub { (http('GET', "/jobs/$id")->{json}{status} // '') eq
    'running' }, scaled(10), 'running'), 'it runs');
ok(wait_until(sub { (worker()->{state} // '') eq 'busy' }, scaled(5),
    'busy'), 'its worker is busy');
ok(wait_until(sub { grep { $_ eq $id } @{ ran() } }, scaled(10),
    'handler started'), 'its handler started (its log line)');
my $pid = worker()->{pid};
is(record($id)->{slot}, 0, 'the record names the slot running it');

$r = http('DELETE', "/jobs/$id");
is($r->{status}, 409, 'offload_cancel_running off: DELETE of a running job '
    . '409');
is($r->{json}{error}{code}, 'running', 'code running');
is(record($id)->{status}, 'running', 'it still runs');

# a long poll waits for the job's end: the cancel is that end
my $poll = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $poll "GET /jobs/$id?wait=20 HTTP/1.1\r\nHost: x\r\n"
    . "Connection: close\r\n\r\n";

$r = http('DELETE', "/stop/$id");
is($r->{status}, 200, 'offload_cancel_running on: 200');
is($r->{json}{status}, 'cancelled', 'status cancelled');
ok($r->{json}{finished_at}, 'finished_at set');

my $polled = read_answer($poll, scaled(10));
is($polled->{status}, 200, 'the long poll answered');
is($polled->{json}{status}, 'cancelled', 'with the cancel');

ok(wait_until(sub {
    my $w = worker();
    $w->{pid} && $w->{pid} != $pid && ($w->{state} // '') eq 'idle'
}, scaled(10), 'worker replaced'), 'its worker was killed and replaced');
ok(!kill(0, $pid) || slurp("/proc/$pid/stat") =~ /^\S+ \(.*\) Z/,
    "the old worker (pid $pid) is gone");
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job \Q$id\E cancelled while it ran, killing pid $pid/,
    'the sidecar says why it killed it');

# not retried, not dead-lettered, not a crash
is(post_json('/sync/runs', { log => $runs })->{status}, 200,
    'the new worker runs the next job');
is(scalar(grep { $_ eq $id } @{ ran() }), 1, 'the cancelled job ran once, '
    . "never again") or diag(slurp($runs));
is(redis_cmd('XLEN', 'offload:{runs}:jobs'), 0, 'its entry is gone');
is(redis_cmd('XPENDING', 'offload:{runs}:jobs', 'workers')->[0], 0,
    'nothing pending');
is(redis_cmd('ZCARD', 'offload:{runs}:retry'), 0, 'no retry waiting');
is(redis_cmd('XLEN', 'offload:{runs}:dead'), 0, 'no dead letter');
my $rec = record($id);
is($rec->{status}, 'cancelled', 'the record still says cancelled');
is($rec->{attempts}, 1, 'one attempt');
is(http('GET', "/jobs/$id")->{json}{status}, 'cancelled', 'GET: cancelled');
ok(wait_until(sub { defined worker()->{jobs_cancelled} }, scaled(5),
    'doc'), 'the registry is up to date');
is(worker()->{jobs_crashed}, 0, 'not counted as a crash');
is(worker()->{jobs_cancelled}, 1, 'counted as cancelled');
is(worker()->{last_exit}, 'cancelled', 'the slot\'s last exit: cancelled');
is(scalar(@{ events('crash') }), 0, 'no crash event');

# DELETE again: the job ended
is(http('DELETE', "/stop/$id")->{status}, 409, 'DELETE again: 409');

# A cancel can come before its job runs in the worker its record names:
# the start script said running, the worker still reads the job's body.
# The supervisor looks for it again each round, it does not drop it.
# Staged on the cancel list itself: a worker of another queue is busy (the
# supervisor pops only then), the request names runs:0 and a job that no
# worker runs yet; then that job comes and runs there.
my $held = send_post('/sync/hold', '{"ms":3000}');
ok(wait_until(sub { ((node_doc() || {})->{queues}{hold}{workers}[0]{state}
    // '') eq 'busy' }, scaled(5), 'hold busy'), 'a worker of hold is busy');
my $early = 'feedfacefeedface00000000000000c1';
my $before = worker()->{pid};
redis_cmd('RPUSH', 'offload:{runs}:cancel:' . node_name(), "runs 0 $early");
ok(wait_until(sub { redis_cmd('LLEN', 'offload:{runs}:cancel:' . node_name())
    == 0 }, scaled(5), 'popped'), 'the supervisor took the request');
redis_cmd('XADD', 'offload:{runs}:jobs', '*', v => 1, id => $early,
    payload => qq({"log":"$runs","sleep":2}));
ok(wait_until(sub { my $w = worker()->{pid}; $w && $w != $before },
    scaled(5), 'killed'), 'the job came later: its worker was killed');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job \Q$early\E cancelled while it ran, killing pid $before/,
    'the sidecar says why');
is(read_answer($held, scaled(10))->{status}, 200, 'hold answered');

# A job cancelled while it runs that fails for now on its last attempt
# before its worker is killed is not dead-lettered: it was cancelled.
# Staged by marking its record as the job script does, without the kill.
$r = post_json('/async/once', { log => $runs, sleep => 1, ok_at => 5 });
my $last = $r->{json}{id} // '';
ok(wait_until(sub { (record($last)->{status} // '') eq 'running' },
    scaled(10), 'running'), 'a job on its last attempt runs');
redis_cmd('HSET', record_key($last), 'status', 'cancelled');
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{once}:jobs') == 0 },
    scaled(10), 'gone'), 'its entry is gone once it failed for now');
is(redis_cmd('XLEN', 'offload:{once}:dead'), 0, 'no dead letter');
is(record($last)->{status}, 'cancelled', 'its record still says cancelled');

finish();
