#!/usr/bin/perl
# Work nobody waits for is not done: a sync job whose client goes away
# before a worker takes it is marked in its queue's cancelled set and
# dropped unrun by the worker (its handler's log proves it never ran); a
# job already running when its client leaves runs on, and its mark does
# not stop the jobs behind it; the set prunes itself and expires.  Redis
# forgetting its scripts (SCRIPT FLUSH, as a restart does) changes none of
# it: the worker's EVALSHA calls fall back to EVAL and load them again
# (the jobs' completions, plain sync jobs', go by MULTI/EXEC: no script).

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
queue runs { handler exec; workers 1; command "$count"; }
CONF
ok(start_jobs_nginx(
    http => q{log_format status '$status $request_uri';},
    server => "offload_timeout 30s;\naccess_log \@DIR\@/access.log status;"),
    'stack ready');

my $runs = tmpdir() . '/runs.log';
my $set = 'offload:{runs}:cancelled';
my $stream = 'offload:{runs}:jobs';
sub ran { [ map { (split ' ')[0] } split /\n/, slurp($runs) // '' ] }

# the busy job holds the only worker; its client will leave while it runs
my $busy = send_post('/jobs/runs', json_encode({ log => $runs, sleep => 1.5 }));
ok(wait_until(sub { @{ ran() } == 1 }, scaled(10), 'busy job runs'),
    'the busy job started');
my $busy_id = ran()->[0];

# the victim waits in the stream behind it
my $victim = send_post('/jobs/runs', json_encode({ log => $runs }));
ok(wait_until(sub { redis_cmd('XLEN', $stream) == 2 }, scaled(5),
    'victim queued'), 'the victim is queued behind the busy job');
my ($victim_entry) = grep { $_->{id} ne $busy_id }
    @{ stream_entries($stream) };
my ($victim_id, $victim_rid) = @{ $victim_entry // {} }{qw(id rid)};
ok($victim_id, 'its job id');

close $victim;
close $busy;
ok(wait_until(sub { redis_cmd('ZCARD', $set) == 2 }, scaled(5),
    'both marked'), 'both clients gone: both jobs marked cancelled');
my $ttl = redis_cmd('PTTL', $set);
ok($ttl > 0 && $ttl <= 30000, "the set expires after the last deadline "
    . "(PTTL $ttl ms)");

# Redis forgets the scripts while the busy job still holds the worker: its
# completion and the check of the batch behind it both get NOSCRIPT
redis_cmd('SCRIPT', 'FLUSH');
is(redis_cmd('XLEN', $stream), 2,
    'scripts flushed before the busy job completed');

# a job whose client waits, behind them: it runs once the busy job ends
my $after = post_json('/jobs/runs', { log => $runs });
is($after->{status}, 200, 'a waited-for job behind them: 200')
    or diag($after->{content});
my $after_id = $after->{headers}{'x-offload-job-id'} // '';

is_deeply(ran(), [ $busy_id, $after_id ],
    'the handler ran the busy job and the later one, never the victim');
is(redis_cmd('XLEN', $stream), 0, 'the victim\'s entry is gone');
is(redis_cmd('XPENDING', $stream, 'workers')->[0], 0, 'nothing pending');
is(redis_cmd('EXISTS', "offload:{runs}:result:$victim_id"), 0,
    'no result for the victim');
is_deeply(redis_cmd('ZRANGE', $set, 0, -1), [ $busy_id ],
    'the victim\'s mark went with it; the busy job\'s waits for its '
    . 'deadline');

ok(wait_until(sub {
    (node_doc()->{queues}{runs}{workers}[0]{jobs_cancelled} // 0) == 1
}, scaled(5), 'counted'), 'the worker counts one cancelled job');
my $its_ids = qr/\(job \Q$victim_id\E, request \Q$victim_rid\E[,)]/;
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job \Q$victim_id\E cancelled, not run: its client went away $its_ids/,
    'the sidecar logs it, the line carrying its job and request ids');
sub evals { my ($what) = @_; scalar(() = slurp(tmpdir() . '/sidecar.log')
    =~ /worker runs:0: \Q$what\E script not loaded, using EVAL/g) }
is(evals('drop-cancelled'), 1,
    'the victim was dropped by EVAL after NOSCRIPT');
is(evals('completion'), 0, 'the busy job was completed without the '
    . 'script (a plain sync job: MULTI/EXEC)');
ok(wait_until(sub {
    (() = slurp(tmpdir() . '/access.log') =~ m{^499 /jobs/runs$}mg) == 2
}, scaled(5), '499s'), 'nginx logged both aborts 499');

# a mark past its deadline is pruned by the next check
redis_cmd('ZADD', $set, 1, 'long-gone');
is(post_json('/jobs/runs', { log => $runs })->{status}, 200,
    'jobs still run with stale marks around');
is(scalar(grep { $_ eq 'long-gone' } @{ redis_cmd('ZRANGE', $set, 0, -1) }),
    0, 'a mark past its deadline is pruned');
is(evals('drop-cancelled'), 1,
    'the script was loaded again: later checks go by EVALSHA');

# a marked job whose body is in its body key: dropped with that key (the
# drop script declares it), as a program that writes to Redis may submit
my $gone = sprintf '%032x', 41;
my $far = int(time * 1000) + 30_000;
redis_cmd('ZADD', 'offload:{echo}:cancelled', $far, $gone);
redis_cmd('RPUSH', "offload:{echo}:body:$gone", '{"big":1}');
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 1, id => $gone,
    body => 9, reply => 'offload:reply:t', deadline => $far,
    submitted => $far - 30_000, attempt => 1);
ok(wait_until(sub {
    redis_cmd('EXISTS', "offload:{echo}:body:$gone") == 0
        && redis_cmd('XLEN', 'offload:{echo}:jobs') == 0
}, scaled(10), 'dropped'), 'a marked job with a body key: dropped, '
    . 'its body key unlinked');
is(redis_cmd('EXISTS', "offload:{echo}:result:$gone"), 0, 'and never run');
redis_cmd('DEL', 'offload:{echo}:cancelled');

# the sync path of a client that waits adds nothing to the set
is(post_json('/jobs/echo', { x => 1 })->{status}, 200, 'echo: 200');
is(redis_cmd('EXISTS', 'offload:{echo}:cancelled'), 0,
    'no mark for a job whose client waited');

finish();
