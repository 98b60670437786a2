#!/usr/bin/perl
# A job that crashes its worker, or runs past its queue's timeout, ended
# too: it counts in the pool's jobs/s and run times (node document,
# offload_status, offloadctl queues and top, the dashboard, Prometheus), as
# a job that answered does.  (Before: only a worker that finished a job
# counted it, and a queue whose every job crashed or timed out showed 0
# jobs/s and no run time while its restarts climbed; found by a probe that
# reconciled the metrics with what happened.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(heartbeat => '500ms', conf => <<'CONF');
fault_handlers on;
queue crash { handler crash; workers 1; max_attempts 1;
              restart_backoff 10ms 10ms; max_restarts 100 1s; }
queue hang { handler hang; workers 2; timeout 300ms; max_attempts 1; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

my @crash = map { send_post('/jobs/crash', '{}') } 1 .. 4;
my @hang = map { send_post('/jobs/hang', '{}') } 1 .. 2;
is(scalar(grep { read_answer($_)->{status} == 502 } @crash), 4,
    '4 crash jobs: 502 each');
is(scalar(grep { read_answer($_)->{status} == 504 } @hang), 2,
    '2 hang jobs: 504 job_timeout each');

my $q;
ok(wait_until(sub {
    $q = (node_doc() || {})->{queues};
    ($q->{crash}{jobs_per_s} // 0) > 0 && ($q->{hang}{jobs_per_s} // 0) > 0
        && defined $q->{crash}{run_p99_ms}
        && defined $q->{hang}{run_p99_ms};
}, scaled(10), 'jobs/s and run times of both queues'),
    'the crashed and timed-out jobs count in jobs/s and run times')
    or diag(explain { map { $_ => { jobs_per_s => $q->{$_}{jobs_per_s},
        run_p99_ms => $q->{$_}{run_p99_ms} } } qw(crash hang) });
cmp_ok($q->{hang}{run_p99_ms} // 0, '>=', 300,
    'a timed-out job ran its whole timeout (' . ($q->{hang}{run_p99_ms}
    // '-') . ' ms)');
cmp_ok($q->{crash}{run_p99_ms} // 1e9, '<', 300,
    'a crash at once ran briefly (' . ($q->{crash}{run_p99_ms} // '-')
    . ' ms)');

finish();
