#!/usr/bin/perl
# Bad payloads do not take a queue offline; a broken handler still fails
# its pool.  A job that crashes its worker on each of its attempts counts
# once toward max_restarts, and crashes between which the pool finished
# jobs start the count again: before, three such jobs at max_attempts 2
# (six restarts) failed the pool, and any client could have its queue
# answer 503 no_workers for restart_cooldown.  Crashes of distinct jobs
# with nothing finished between them still fail it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue flaky {
    handler flaky; workers 2; max_attempts 2;
    max_restarts 3 1m; restart_backoff 10ms 20ms; restart_cooldown 1m;
}
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

sub state { ((node_doc() // {})->{queues}{flaky} // {})->{state} // '' }

sub poison {
    my ($n) = @_;
    for my $i (1 .. $n) {
        my $r = post_json('/jobs/flaky', { fail_rate => 1, i => $i },
            scaled(20));
        return "job $i: $r->{status} $r->{content}" unless $r->{status} == 502;
    }
    return 'all 502';
}

sub good { post_json('/jobs/flaky', { fail_rate => 0 }, scaled(20)) }

is(poison(3), 'all 502', 'three bad payloads crash their workers twice '
    . 'each: 502');
isnt(state(), 'failed', 'the pool is not failed (six restarts, three '
    . 'jobs)');
is(good()->{status}, 200, 'a good job: 200');

is(poison(3), 'all 502', 'three more, after a job the pool finished');
isnt(state(), 'failed', 'the pool is still not failed');
is(good()->{status}, 200, 'a good job: 200');

# a handler broken for every job: four jobs, nothing finished between
is(poison(3), 'all 502', 'three bad jobs in a row');
isnt(state(), 'failed', 'the pool is not failed yet');
# the fourth's first crash fails the pool: its next attempt waits for the
# cooldown, its client is not waited for here
my $fourth = send_post('/jobs/flaky', '{"fail_rate":1}');
ok(wait_until(sub { state() eq 'failed' }, scaled(5), 'pool failed'),
    'a fourth fails the pool: four jobs crashed, none finished between');
like(slurp(tmpdir() . '/sidecar.log'), qr/pool flaky failed: 4 restarts/,
    'and says so');

finish();
