#!/usr/bin/perl
# Preemption and containment: a job past its queue's timeout gets its
# worker killed and answers 504 job_timeout; a leaking worker is recycled
# between jobs at its memory_limit while every job succeeds; a job that
# blows past twice the limit fails as out_of_memory; max_jobs_per_worker
# recycles workers.  Recycling is not a crash.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue hang  { handler hang; workers 1; timeout 1s; max_attempts 3; }
queue leak  { handler leak; workers 2; memory_limit 32m; }
queue hog   { handler leak; workers 1; memory_limit 32m; max_attempts 2; }
queue greedy { handler leak; workers 1; max_attempts 1; }
queue count { handler echo; workers 1; max_jobs_per_worker 3; }
queue echo  { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

sub pid_of { my $p = worker_pids() or return 0; $p->{$_[0]}[$_[1]] // 0 }

# ---- hang: killed after timeout 1s (+ grace), 504, not run again
my $hang_pid = pid_of('hang', 0);
my $r = post_json('/jobs/hang', { forever => 1 }, scaled(20));
is($r->{status}, 504, 'hang: 504') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'job_timeout', 'hang: job_timeout');
is($r->{json} && $r->{json}{error}{timeout_ms}, 1000, 'hang: says 1000 ms');
is($r->{json} && $r->{json}{error}{attempts}, 1,
    'hang: not re-run (a timeout is the job\'s fault)');
ok($r->{ms} >= 1000 && $r->{ms} < scaled(5000),
    "hang: answered after the timeout ($r->{ms} ms)");
diag(sprintf 'hang: 504 after %d ms (timeout 1000 ms)', $r->{ms});
ok(wait_until(sub { my $p = pid_of('hang', 0); $p && $p != $hang_pid }, 10,
    'hang worker replaced'), 'hang: the worker was replaced');
my ($dead) = @{ stream_entries('offload:{hang}:dead') };
is($dead && $dead->{reason}, 'job_timeout', 'hang: dead-lettered');
# a timeout event, not a crash (before: a crash event, kept among the
# node's latest crash reports, pushing real ones out; its job counted
# crashed)
my ($crash) = grep { $_->{queue} eq 'hang' } @{ events('timeout') };
is($crash && $crash->{report}{reason}, 'job_timeout',
    'hang: timeout event says job_timeout');
is($crash && $crash->{report}{signal}, 'SIGKILL', 'hang: by SIGKILL');
ok(!(grep { $_->{queue} eq 'hang' } @{ events('crash') }),
    'hang: no crash event');
ok(!(grep { /"queue":"hang"/ } @{ redis_cmd('LRANGE', 'offload:{ctl}:crashes',
    0, -1) || [] }), 'hang: not among the latest crash reports');
ok(wait_until(sub { my $w = node_doc()->{queues}{hang}{workers}[0];
        $w->{jobs_failed} == 1 }, scaled(5), 'counted'),
    'hang: its job counted failed');
is(node_doc()->{queues}{hang}{workers}[0]{jobs_crashed}, 0,
    'hang: not crashed');
is(node_doc()->{queues}{hang}{restarts}, 0,
    'hang: a timeout kill is not counted as a restart');
is(post_json('/jobs/echo', {})->{status}, 200, 'echo answers meanwhile');

# ---- leak: 8 MB kept per job, memory_limit 32m: recycled, none failed
my @leak_pids = @{ worker_pids()->{leak} };
my @res = concurrent_posts(2, 10, sub { '{"mb":8}' }, path => '/jobs/leak');
is(scalar(grep { $_->{status} == 200 } @res), 20,
    'leak: all 20 jobs answered 200') or diag(explain [ map { $_->{status} }
    @res ]);
my @recycles = grep { $_->{queue} eq 'leak' } @{ events('recycle') };
ok(@recycles >= 2, scalar(@recycles) . ' recycles of leak workers');
is($recycles[0] && $recycles[0]{report}{reason}, 'memory_limit',
    'recycle reason: memory_limit');
ok(!(grep { $_->{queue} eq 'leak' } @{ events('crash') }),
    'leak: no crash');
ok(wait_until(sub {
    my $p = worker_pids()->{leak};
    $p->[0] && $p->[1] && $p->[0] != $leak_pids[0]
        && $p->[1] != $leak_pids[1];
}, 10, 'leak workers replaced'), 'leak: both workers were replaced');
is(node_doc()->{queues}{leak}{restarts}, 0, 'leak: recycling is not a '
    . 'restart');

# ---- one job past twice the limit: out_of_memory, the worker replaced
SKIP: {
    skip 'no RLIMIT_AS under AddressSanitizer', 4 if sanitize();
    my $hog_pid = pid_of('hog', 0);
    $r = post_json('/jobs/hog', { mb => 200 }, scaled(20));
    is($r->{status}, 502, 'hog: 502') or diag($r->{content});
    is($r->{json} && $r->{json}{error}{code}, 'out_of_memory',
        'hog: out_of_memory');
    is($r->{json} && $r->{json}{error}{attempts}, 2, 'hog: tried twice');
    ok(wait_until(sub { my $p = pid_of('hog', 0); $p && $p != $hog_pid },
        10, 'hog replaced'), 'hog: the worker was replaced');
}

# ---- no memory_limit: an allocation every machine refuses (2^47 bytes,
# more than x86-64's user address space) is no memory_limit's
SKIP: {
    skip 'AddressSanitizer aborts on such an allocation', 4 if sanitize();
    $r = post_json('/jobs/greedy', { mb => 2**27 }, scaled(20));
    is($r->{status}, 502, 'greedy: 502') or diag($r->{content});
    is($r->{json} && $r->{json}{error}{code}, 'out_of_memory',
        'greedy: out_of_memory');
    is($r->{json} && $r->{json}{error}{reason}, 'allocation_failed',
        'greedy: reason allocation_failed');
    unlike($r->{json} && $r->{json}{error}{message} // '', qr/memory_limit/,
        'greedy: the message names no memory_limit');
}

# ---- max_jobs_per_worker 3: a new worker after every 3 jobs
my $first = pid_of('count', 0);
for my $i (1 .. 7) {
    $r = post_json('/jobs/count', { i => $i });
    is($r->{status}, 200, "count job $i: 200");
}
my @count = grep { $_->{queue} eq 'count' } @{ events('recycle') };
is(scalar @count, 2, 'count: recycled twice in 7 jobs');
is($count[0] && $count[0]{report}{reason}, 'max_jobs_per_worker',
    'count: reason max_jobs_per_worker');
ok(wait_until(sub { my $p = pid_of('count', 0); $p && $p != $first }, 10,
    'count worker replaced'), 'count: a new worker');

finish();
