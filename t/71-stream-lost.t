#!/usr/bin/perl
# A served queue's stream goes while its workers are busy: someone DELs
# it, or FLUSHALLs the Redis.  The supervisor makes the stream and its
# group again within a heartbeat (its stats script, for the queues its
# started workers serve), so new jobs are taken at once: not 404
# unknown_queue ("no worker serves this queue") until the busy workers
# next read, after their jobs.  (Before: 404 for as long as the longest
# running job, 7.8 s of 8 s jobs here.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OffloadTest;

my $JOB_MS = 8000;

start_redis();
start_sidecar(conf => "queue sleep { handler sleep; workers 2; }\n");
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ { offload_jobs; }
}
HTTP
ok(wait_until(sub { post_json('/async/sleep', '{"ms":0}')->{status} == 202 },
    scaled(10), 'a job taken'), 'stack ready');

for my $how ([ 'DEL', 'offload:{sleep}:jobs' ], [ 'FLUSHALL' ]) {
    my @ids = map { running_sleep_job($JOB_MS) } 1 .. 2;
    is(redis_cmd(@$how), $how->[0] eq 'DEL' ? 1 : 'OK', "$how->[0]");
    my $t0 = time;
    my ($r, @refused);
    ok(wait_until(sub {
            $r = post_json('/async/sleep', '{"ms":0}');
            push @refused, $r->{status} if $r->{status} != 202;
            $r->{status} == 202;
        }, scaled(6), 'a job taken'), "$how->[0]: a new job is taken")
        or diag("$r->{status} $r->{content}");
    my $took = time - $t0;
    diag(sprintf "%s: a job taken %.2f s after, %d refused before", $how->[0],
        $took, scalar @refused);
    cmp_ok($took, '<', scaled(3), "$how->[0]: within a few heartbeats, "
        . "while the workers still run their ${JOB_MS} ms jobs");
    my $id = $r->{json} && $r->{json}{id};
    ok(wait_until(sub { async_job_status($id) eq 'done' }, scaled(20),
        "job $id done"), "$how->[0]: and run once a worker is free");
}

finish();
