#!/usr/bin/perl
# prefetch: a worker that takes several jobs in one read answers each as
# soon as it is done, not when the whole batch is.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use RedisMonitor;

my $ms = 400;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 1; prefetch 4; }
CONF
ok(start_jobs_nginx(
    server => 'offload_timeout 30s;',
    ready => [ '/jobs/sleep', '{"ms":0}' ]), 'stack ready');

# Four jobs at once for one worker: it reads the first alone or all four,
# then the rest in one batch.  Run one after the other, they end ~$ms apart.
my @r = sort { $a->{at} <=> $b->{at} }
    concurrent_posts(4, 1, sub { qq({"ms":$ms}) }, path => '/jobs/sleep');

is(scalar(grep { $_->{status} == 200 } @r), 4, 'all four answered 200')
    or diag(explain([ map { "$_->{status} $_->{content}" } @r ]));

my $spread = $r[3]{at} - $r[1]{at};
diag(sprintf 'answers at +%.2f +%.2f +%.2f s after the first',
    map { $r[$_]{at} - $r[0]{at} } 1 .. 3);
cmp_ok($spread, '>', $ms / 1000,
    'the second answer left well before the last: not held for the batch');

# The jobs of a batch that end in the same turn of the worker's loop are
# completed by one call (MULTI/EXEC for these plain sync jobs, with one
# XACK of all their entries): a job holds the worker while four more
# queue behind it; the four come in one read, and each is answered with
# its own result.  The worker gives its loop a turn every WORK_SLICE_US,
# so on a loaded machine a preempted worker may end each of them in a
# turn of its own: up to three tries.
my ($most, @per_call) = (0);
for my $try (1 .. 3) {
    my $mon = RedisMonitor->start;
    my $blocker = send_post('/jobs/sleep', '{"ms":1000}');
    ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5),
        'job taken'), "try $try: the worker holds one job");
    my @behind = map { send_post('/jobs/sleep', '{"ms":0}') } 1 .. 4;
    ok(wait_until(sub { redis_cmd('XLEN', 'offload:{sleep}:jobs') == 5 },
        scaled(5), 'four queued'), "try $try: four more wait behind it");
    is(read_answer($blocker)->{status}, 200, "try $try: the first answered");
    my @answers = map { read_answer($_) } @behind;
    # (the time slept: 0 ms asked, more on a busy machine)
    is(scalar(grep { $_->{status} == 200
            && $_->{content} =~ /^\{"ms":\d+\}\z/ } @answers), 4,
        "try $try: each of the four answered with its result")
        or diag(explain(\@answers));
    $mon->catch_up(5);
    # entry ids of a completion's XACK: one per job it completes
    @per_call = map { scalar grep { /^\d+-\d+\z/ } @$_[2 .. $#$_] }
        grep { $_->[1] =~ /^XACK\z/i } @{ $mon->seen };
    diag("try $try: jobs per completion call: @per_call");
    $most = (sort { $b <=> $a } @per_call)[0] // 0;
    last if $most >= 2;
}
cmp_ok($most, '>=', 2, 'several jobs completed by one call');
is(redis_cmd('XLEN', 'offload:{sleep}:jobs'), 0, 'every entry deleted');
is(pending_jobs('sleep'), 0, 'none left pending');

finish();
