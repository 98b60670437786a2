#!/usr/bin/perl
# The supervisor replaces a killed worker in the same slot, the registry
# shows the new pid, a job the dead worker held runs again, and offloadctl
# reports the node.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 20s;'), 'stack ready');

my $ctl = build_path('offloadctl');
my $redis = '127.0.0.1:' . redis_port();

# ---- offloadctl
my $out = `$ctl -r $redis ping 2>&1`;
is($? >> 8, 0, 'offloadctl ping: exit 0');
like($out, qr/PONG/, 'offloadctl ping: PONG');

$out = `$ctl -c ${\ sidecar_conf_file()} status 2>&1`;
is($? >> 8, 0, 'offloadctl status: exit 0');
my $node = node_name();
like($out, qr/\Q$node\E/, 'status names the node');
like($out, qr/\becho\b/, 'status names queue echo');
like($out, qr/\bsleep\b/, 'status names queue sleep');
my $pids = worker_pids();
like($out, qr/\b$pids->{echo}[1]\b/, 'status shows a worker pid');

$out = `$ctl -r $redis status --json 2>&1`;
is($? >> 8, 0, 'offloadctl status --json: exit 0');
my $st = json_decode($out);
$st = {} unless ref $st eq 'HASH';
ok(ref $st->{nodes} eq 'ARRAY',
    'status --json is an object with a "nodes" array') or diag($out);
is_deeply($st->{malformed_nodes}, [], 'and an empty "malformed_nodes"')
    or diag($out);
my ($doc) = grep { $_->{node} eq $node } @{ $st->{nodes} || [] };
ok($doc, 'with our node');
is($doc && $doc->{pid}, sidecar_pid(), 'node pid is the supervisor');
is($doc && scalar @{ $doc->{queues}{echo}{workers} }, 2, 'two echo workers');
is($doc && $doc->{queues}{echo}{handler}, 'echo', 'echo handler');

my $dead = free_port();
$out = `$ctl -r 127.0.0.1:$dead ping 2>&1`;
is($? >> 8, 1, 'offloadctl ping to a dead port: exit 1');
ok(length $out, 'with a message') or diag($out);
`$ctl --no-such-option 2>&1`;
is($? >> 8, 2, 'offloadctl with a bad option: exit 2');

# ---- SIGKILL an idle worker, one that has run a job before
ok(wait_until(sub {
    post_json('/jobs/echo', {});
    (node_doc()->{queues}{echo}{workers}[0]{jobs_ok} // 0) > 0;
}, scaled(10), 'slot 0 ran a job'), 'echo slot 0 has run a job');
ok(wait_until(sub {
    (node_doc()->{queues}{echo}{workers}[0]{state} // '') eq 'idle'
}, scaled(10), 'slot 0 idle'), 'and is idle');
my $old = $pids->{echo}[0];
ok(kill('KILL', $old), "killed echo worker slot 0 (pid $old)");
ok(wait_until(sub {
    my $p = worker_pids() or return 0;
    $p->{echo}[0] && $p->{echo}[0] != $old && !kill(0, $old);
}, 10, 'registry shows a new pid in slot 0'), 'slot 0 replaced');
my ($idle) = grep { $_->{report}{pid} == $old } @{ events('crash') };
ok($idle && !exists $idle->{report}{job_id},
    'the idle worker\'s crash report names no job') or diag(explain($idle));
is($idle && $idle->{report}{state}, 'idle', 'and says it was idle');
like(slurp(tmpdir() . '/sidecar.log'),
    qr/pid $old killed by SIGKILL \(signal\) while idle, holding no job/,
    'the log says it held no job');
my $new = worker_pids()->{echo}[0];
ok(kill(0, $new), "new worker $new alive");
is(worker_pids()->{echo}[1], $pids->{echo}[1], 'slot 1 untouched');

my $ok = 0;
for my $i (1 .. 40) {
    my $r = post_json('/jobs/echo', { i => $i });
    $ok++ if $r->{status} == 200 && $r->{json}{i} == $i;
}
is($ok, 40, 'jobs still work');

# ---- SIGKILL a worker in the middle of a job: the supervisor puts the job
# back at once (attempt 2) and the slot's next worker runs it again
my $victim = $pids->{sleep}[0];
my $sock = send_post('/jobs/sleep', '{"ms":1000}');
# busy in the scoreboard (via the registry): the handler is running
ok(wait_until(sub {
    my $w = node_doc()->{queues}{sleep}{workers}[0] || {};
    ($w->{state} // '') eq 'busy' && $w->{job};
}, 5, 'the sleep worker is busy'), 'the sleep worker runs the job');
my $t0 = time;
kill 'KILL', $victim;
my $resp = '';
local $SIG{ALRM} = sub { die "no answer\n" };
alarm 15;
eval { 1 while sysread($sock, $resp, 65536, length $resp); alarm 0 };
alarm 0;
like($resp, qr{^HTTP/1\.1 200}, 'the job held by the killed worker is '
    . 'answered 200') or diag($@ || $resp);
diag(sprintf 'answered %.2f s after the kill (the job sleeps 1 s)',
    time - $t0);
isnt(worker_pids()->{sleep}[0], $victim, 'sleep slot 0 has a new pid');
my ($crash) = grep { $_->{report}{pid} == $victim } @{ events('crash') };
ok($crash, 'a crash event for the killed worker');
is($crash && $crash->{report}{signal}, 'SIGKILL', 'classified: SIGKILL');
is($crash && $crash->{report}{attempt}, 1, 'it held attempt 1 of the job');

# ---- SIGTERM: the supervisor stops its workers, removes its registry
# entry and exits 0
my $all = worker_pids();
my @workers = map { @$_ } values %$all;
is(stop_sidecar(), 0, 'sidecar exits 0 on SIGTERM');
ok(!(grep { kill 0, $_ } @workers), 'all its workers are gone');
is(redis_cmd('EXISTS', "offload:{ctl}:node:$node"), 0, 'registry key deleted');
is(redis_cmd('SISMEMBER', 'offload:{ctl}:nodes', $node), 0, 'node left the set');

# ---- jobs wait in the stream while no sidecar runs.  nginx answers 503
# no_workers for a queue no live node serves (t/51-admission), so the job
# comes straight through Redis, as from a program that submits its own
my $waited = '0123456789abcdef00000000000000b1';
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 1, id => $waited,
    payload => '{"waited":true}');
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), 1,
    'job queued with no sidecar running');
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
CONF
my $result;
wait_until(sub {
    $result = redis_cmd('GET', "offload:{echo}:result:$waited");
    defined $result }, scaled(15), 'the waiting job answered');
like($result // '', qr/^OR1 $waited 200 .*\n\{"waited":true\}\z/s,
    'a job queued while the sidecar was down is answered once it is back');

# ---- SIGKILL of the supervisor while a worker holds a job: its workers
# die with it, and a sidecar started again runs the job
ok(wait_until(sub { (http('POST', '/jobs/sleep', '{"ms":1}')->{status}
    // 0) == 200 }, scaled(10), 'nginx sees the node'),
    'nginx sends jobs to the new node');
$all = worker_pids();
@workers = map { @$_ } values %$all;
$sock = send_post('/jobs/sleep', '{"ms":500}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, 5,
    'the sleep job is pending'), 'a worker holds a job');
kill 'KILL', sidecar_pid();
ok(wait_until(sub { !grep { kill 0, $_ } @workers }, 10,
    'workers exit after the supervisor was killed'),
    'no worker outlives a SIGKILLed supervisor');
stop_sidecar();    # reaps it
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
CONF
is(read_answer($sock, scaled(15))->{status}, 200,
    'the job its dead worker held runs on the new sidecar');

finish();
