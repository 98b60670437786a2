#!/usr/bin/perl
# The node's registry document carries the health figures of issue 4: per
# worker RSS, CPU, uptime, jobs, crashes, restarts and last exit; per queue
# backlog, pending, oldest waiting job, jobs/s, run-time percentiles, dead
# letters and pool state; per job CPU time and peak RSS growth in the
# stored result.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue spin { handler spin; workers 1; }
queue leak { handler leak; workers 1; }
queue crash {
    handler crash; workers 1; max_attempts 1; restart_backoff 1s 1s;
}
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');

sub queue_doc { (node_doc() || {})->{queues}{ $_[0] } || {} }
sub worker_doc { (queue_doc($_[0])->{workers} || [])->[0] || {} }

# ---- a fresh worker: RSS, uptime, no history
my $w = worker_doc('echo');
ok(wait_until(sub { (worker_doc('echo')->{rss} // 0) > 0 }, scaled(5),
    'rss sampled'), 'worker rss is reported') or diag(explain($w));
$w = worker_doc('echo');
is($w->{queue}, 'echo', 'worker names its queue');
is($w->{restarts}, 0, 'no restarts yet');
is($w->{jobs_crashed}, 0, 'no crashed jobs yet');
is($w->{last_exit}, '', 'no last exit yet');
my $up = $w->{uptime_ms};
ok(wait_until(sub { (worker_doc('echo')->{uptime_ms} // 0) > $up },
    scaled(5), 'uptime grows'), 'uptime grows');

# ---- jobs: counters, jobs/s, run-time percentiles, per-job resource use
my $before = worker_doc('echo')->{jobs_ok};
for my $i (1 .. 30) {
    post_json('/jobs/echo', { i => $i });
}
ok(wait_until(sub { (worker_doc('echo')->{jobs_ok} // 0) == $before + 30 },
    scaled(5), 'jobs_ok'), 'jobs_ok counts the 30 jobs');
# jobs/s averages the last 10 heartbeats: keep the queue busy meanwhile
ok(wait_until(sub {
    post_json('/jobs/echo', {});
    (queue_doc('echo')->{jobs_per_s} // 0) > 0;
}, scaled(5), 'jobs/s'), 'queue jobs_per_s > 0');
my $q = queue_doc('echo');
ok(defined $q->{run_p50_ms} && defined $q->{run_p99_ms}
    && $q->{run_p50_ms} <= $q->{run_p99_ms}, 'run p50 <= p99')
    or diag(explain($q));
is($q->{state}, 'ok', 'pool state ok');
is($q->{dead}, 0, 'no dead letters');
# idle again: jobs/s (10 heartbeats) falls back to 0 while the run-time
# percentiles (60 heartbeats, 12 s) still hold the jobs
ok(wait_until(sub { (queue_doc('echo')->{jobs_per_s} // -1) == 0 },
    scaled(10), 'jobs/s back to 0'), 'idle queue: jobs_per_s 0');
ok(defined queue_doc('echo')->{run_p99_ms}, 'idle queue: run p99 kept');

my $r = post_json('/jobs/leak', { mb => 16 });
is($r->{status}, 200, 'leak job answered');
my $keys = redis_cmd('KEYS', 'offload:{leak}:result:*');
is(scalar @$keys, 1, 'one leak result stored');
my $res = redis_cmd('GET', $keys->[0]);
my ($cpu, $rss) = $res =~ /^OR1 \S+ 200 \d+ \d+ (\d+) (\d+)\n/;
ok(defined $rss, 'result header carries cpu and rss growth') or diag($res);
# the worker's peak before the job may hold a little heap it freed since
# (a job's buffers), which the 16 MB partly reuses: a margin of 1 MB
ok(($rss // 0) >= 15 * 1024, "peak RSS growth of a 16 MB leak: $rss kB");
ok(wait_until(sub { (worker_doc('leak')->{rss} // 0) > 16 << 20 },
    scaled(5), 'leak rss'), 'the leaking worker reports RSS over 16 MB');

# A process's user CPU time so far, in s (/proc/<pid>/stat, field 14).
sub user_cpu_s {
    my ($pid) = @_;
    my ($after) = slurp("/proc/$pid/stat") =~ /\) (.*)/ or return 0;
    return (split / /, $after)[11] / POSIX::sysconf(POSIX::_SC_CLK_TCK);
}

# ---- CPU: a spinning worker shows the user CPU it gets: near a core on a
# quiet machine; under the suite's other load its nice 10 may get it much
# less, and then the figure says as much as /proc does
my $spin = send_post('/jobs/spin', '{"ms":' . scaled(6000) . '}');
ok(wait_until(sub { (worker_doc('spin')->{state} // '') eq 'busy' },
    scaled(5), 'busy'), 'a spinning worker is busy');
$w = worker_doc('spin');
ok(($w->{job_ms} // -1) >= 0, 'with its job run time');
my ($t0, $cpu0, $shown) = (time, user_cpu_s($w->{pid}), 0);
wait_until(sub {
    my $c = worker_doc('spin')->{cpu_user} // 0;
    $shown = $c if $c > $shown;
    $shown > 50;
}, scaled(3), 'cpu');
if ($shown > 50) {
    pass("cpu_user shows it: up to $shown%");
} else {
    my $had = 100 * (user_cpu_s($w->{pid}) - $cpu0) / (time - $t0);
    ok($shown > 0 && $had < 60, sprintf('under load, cpu_user up to %.1f%%:'
        . ' it had %.0f%% of a core (/proc)', $shown, $had))
        or diag(explain(worker_doc('spin')));
}

# ---- backlog, pending and the oldest waiting job behind the busy worker
my @waiting = map { send_post('/jobs/spin', '{"ms":1}') } 1 .. 3;
ok(wait_until(sub {
    my $d = queue_doc('spin');
    ($d->{backlog} // 0) == 3 && ($d->{pending} // 0) == 1
        && ($d->{oldest_ms} // 0) > 0
        && (worker_doc('spin')->{held} // 0) == 1;
}, scaled(5), 'backlog'),
    'backlog 3, pending 1 (held by the worker), oldest age > 0')
    or diag(explain(queue_doc('spin')));
is(read_answer($spin)->{status}, 200, 'spin job answered');
is(read_answer($_)->{status}, 200, 'waiting job answered') for @waiting;
ok(wait_until(sub { (queue_doc('spin')->{backlog} // 1) == 0
    && (queue_doc('spin')->{oldest_ms} // 1) == 0 }, scaled(5), 'drained'),
    'backlog drains to 0');

# ---- a crash: jobs_crashed, restarts, last exit, dead letters, cooling
my $pid = worker_doc('crash')->{pid};
$r = post_json('/jobs/crash', {});
is($r->{status}, 502, 'crash job answered 502');
ok(wait_until(sub { (queue_doc('crash')->{state} // '') eq 'cooling' },
    scaled(1), 'cooling'),
    'pool cooling while the worker waits out its restart backoff');
ok(wait_until(sub {
    my $c = worker_doc('crash');
    ($c->{restarts} // 0) == 1 && $c->{pid} && $c->{pid} != $pid;
}, scaled(10), 'restart'), 'slot restarted once');
$w = worker_doc('crash');
is($w->{jobs_crashed}, 1, 'one crashed job');
like($w->{last_exit}, qr/^signal: killed by SIGSEGV/, 'last exit: SIGSEGV')
    or diag($w->{last_exit});
ok(wait_until(sub { (queue_doc('crash')->{dead} // 0) == 1 }, scaled(5),
    'dead'), 'dead-letter count 1');

done_testing();
