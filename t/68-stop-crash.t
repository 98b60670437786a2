#!/usr/bin/perl
# A worker asked to stop (a SIGHUP's rolling restart, a graceful stop)
# finishes its job first; if the job crashes its worker or runs past its
# timeout meanwhile, the job failed, as it would at any other time: one
# run, max_attempts counted, 502 worker_crashed or 504 job_timeout, a dead
# letter.  Only a worker that left as asked (its job done, or killed at
# shutdown_timeout) hands its job back unchanged.  (Before: any death of a
# stopping worker was taken for a clean stop, its job handed back: with
# max_attempts 1 a crashing job ran 3 times across one reload, the crash
# counted once, and a job_timeout's kill was in no count at all; found by
# a probe that reconciled the metrics with what happened.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $mis = "/usr/bin/python3 $FindBin::Bin/exec/misbehave.py";
my $log = tmpdir() . '/sidecar.log';

start_redis();
start_sidecar(conf => <<"CONF");
fault_handlers on;
shutdown_timeout 10s;
queue bad { handler exec; command "$mis"; workers 2; max_attempts 1; }
queue hang { handler hang; workers 2; timeout 500ms; max_attempts 1; }
CONF
ok(start_jobs_nginx(ready => [ '/jobs/bad', '{}' ]), 'stack ready');

sub runs { scalar(() = slurp($log) =~ /\Q$_[0]\E/g) }
sub dead { redis_cmd('XLEN', "offload:{$_[0]}:dead") // 0 }

# Sends $body to queue $q, waits until a worker has it, runs $fault, then
# returns the job's answer.
sub job_under {
    my ($q, $body, $fault) = @_;
    my $s = send_post("/jobs/$q", $body);
    ok(wait_until(sub { pending_jobs($q) == 1 }, scaled(10), "$q job taken"),
        "$q: a worker runs the job");
    $fault->();
    return read_answer($s, scaled(20));
}

# ---- a crash under a SIGHUP's rolling restart -----------------------------

my $r = job_under('bad', '{"say":"run-reload","sleep":1.5,"exit":3}', sub {
    ok(kill('HUP', sidecar_pid()), 'SIGHUP while it runs');
});
is($r->{status}, 502, 'the job that crashed its retired worker: 502');
is($r->{json}{error}{code}, 'worker_crashed', '... worker_crashed');
is($r->{json}{error}{attempts}, 1, '... after 1 attempt');
is(runs('run-reload'), 1, 'it ran once (not again on the other retired '
    . 'worker, then on a new one)');
is(dead('bad'), 1, 'a dead letter');

# ---- a job timeout under a SIGHUP's rolling restart -----------------------

sub reloads_done { runs('reload done') }
ok(wait_until(sub { reloads_done() == 1 }, scaled(10), 'reload done'),
    'the reload is done');
my $kills = runs('ran past the 500 ms timeout');
$r = job_under('hang', '{}', sub {
    ok(kill('HUP', sidecar_pid()), 'SIGHUP while it runs');
});
is($r->{status}, 504, 'the job past its timeout on a retired worker: 504');
is($r->{json}{error}{code}, 'job_timeout', '... job_timeout');
is(runs('ran past the 500 ms timeout') - $kills, 1, 'killed once: it '
    . 'did not run again');
is(dead('hang'), 1, 'a dead letter');

# ---- a crash under a graceful stop ----------------------------------------

ok(wait_until(sub { reloads_done() == 2 }, scaled(10), 'reload done'),
    'the second reload is done');
my $s = send_post('/jobs/bad', '{"say":"run-stop","sleep":1.5,"exit":3}');
ok(wait_until(sub { pending_jobs('bad') == 1 }, scaled(10), 'bad job taken'),
    'bad: a worker runs the job');
is(stop_sidecar(), 0, 'the sidecar, stopped (SIGTERM) meanwhile, exits 0');
$r = read_answer($s, scaled(20));
is($r->{status}, 502, 'the job that crashed its stopping worker: 502, not '
    . 'left for a sidecar that is gone');
is(runs('run-stop'), 1, 'it ran once');
is(dead('bad'), 2, 'a dead letter');

finish();
