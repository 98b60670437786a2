#!/usr/bin/perl
# A job whose worker dies under it: it runs again at once while it has
# attempts left (max_attempts), then goes to the queue's dead-letter stream
# with its payload and a crash report, and the client gets 502
# worker_crashed.  Every crash is an event in offload:{ctl}:events with a
# backtrace.  Other queues keep answering throughout.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
# flaky's slots crash about ten times each: the default restart backoff,
# doubling per crash, would keep some job past offload_timeout (504)
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue crash { handler crash; workers 1; max_attempts 2; max_restarts 100 1s; }
queue abort { handler abort; workers 1; max_attempts 1; }
queue exit  { handler exit; workers 1; max_attempts 1; }
queue flaky { handler flaky; workers 2; max_attempts 10;
              max_restarts 100 1s; restart_backoff 10ms 10ms; }
queue echo  { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

my $log = tmpdir() . '/sidecar.log';

# ---- crash: two attempts, then 502 worker_crashed and a dead letter
my $r = post_json('/jobs/crash', { boom => 1 }, scaled(20));
is($r->{status}, 502, 'crash: 502') or diag($r->{content});
my $e = $r->{json} && $r->{json}{error} || {};
is($e->{code}, 'worker_crashed', 'crash: worker_crashed');
is($e->{signal}, 'SIGSEGV', 'crash: SIGSEGV');
is($e->{reason}, 'signal', 'crash: reason signal');
is($e->{attempts}, 2, 'crash: after max_attempts 2');
diag(sprintf 'crash: 502 after %d ms (two crashes)', $r->{ms});

my $job_id = $r->{headers}{'x-offload-job-id'};
ok($job_id, 'crash: the answer names its job');

my $dead = stream_entries('offload:{crash}:dead');
is(scalar @$dead, 1, 'crash: one dead letter');
is($dead->[0]{id}, $job_id, 'dead letter: the job id');
is_deeply(json_decode($dead->[0]{payload}), { boom => 1 },
    'dead letter: the payload');
is($dead->[0]{attempt}, 2, 'dead letter: attempt 2');
is($dead->[0]{reason}, 'signal', 'dead letter: reason');
my $report = json_decode($dead->[0]{report}) || {};
is($report->{signal}, 'SIGSEGV', 'dead letter report: signal');
is($report->{job_id}, $job_id, 'dead letter report: job id');
ok(ref $report->{backtrace} eq 'ARRAY' && @{ $report->{backtrace} },
    'dead letter report: a backtrace') or diag(explain $report);
ok((grep { /write_nowhere|crash_run|handler_faults|offload-sidecar/ }
    @{ $report->{backtrace} // [] }), 'the backtrace names the crash site')
    or diag(explain $report->{backtrace});

my $keys = redis_cmd('KEYS', "offload:{crash}:result:*");
is(scalar @$keys, 1, 'crash: exactly one result in redis');
is(redis_cmd('XLEN', 'offload:{crash}:jobs'), 0, 'crash: stream is empty');
my $pending = redis_cmd('XPENDING', 'offload:{crash}:jobs', 'workers');
is($pending->[0], 0, 'crash: nothing pending');

my @crashes = grep { ($_->{report}{job_id} // '') eq $job_id }
    @{ events('crash') };
is(scalar @crashes, 2, 'two crash events for the job');
is_deeply([ map { $_->{report}{attempt} } @crashes ], [ 1, 2 ],
    'with attempts 1 and 2');
is($crashes[0]{queue}, 'crash', 'crash event: queue');
is($crashes[0]{node}, node_name(), 'crash event: node');
my $died = 'killed by SIGSEGV (signal) holding its job, attempt 1';
like(slurp($log), qr/crash:0: pid \d+ \Q$died\E \(job $job_id, /,
    'crash logged with its job');
# each line of it, its backtrace's too, names the job (before: the frames
# named nothing, and the death was logged twice)
my @frames = slurp($log) =~ /^.*\] \d+   #\d+ .*$/mg;
ok(@frames > 0, scalar(@frames) . ' backtrace lines');
is(scalar(grep { !/\(job [0-9a-f]{32}, request / } @frames), 0,
    'each naming its job');
my $deaths = () = slurp($log) =~ /worker crash:0: pid \d+ killed by SIGSEGV/g;
is($deaths, 2, 'each of its two deaths logged once, by its crash report');

# ---- abort and exit: classified by signal name and exit code
$r = post_json('/jobs/abort', {}, scaled(20));
is($r->{status}, 502, 'abort: 502');
is($r->{json} && $r->{json}{error}{signal}, 'SIGABRT', 'abort: SIGABRT');
is($r->{json} && $r->{json}{error}{attempts}, 1, 'abort: max_attempts 1');

$r = post_json('/jobs/exit', { code => 7 }, scaled(20));
is($r->{status}, 502, 'exit: 502');
is($r->{json} && $r->{json}{error}{reason}, 'exit', 'exit: reason exit');
my ($exit) = grep { $_->{queue} eq 'exit' } @{ events('crash') };
is($exit && $exit->{report}{exit_code}, 7, 'exit: exit code 7 reported');

# ---- flaky: crashes half the time, re-runs until it answers
my @res = concurrent_posts(4, 5, sub { json_encode({ fail_rate => 0.5,
    n => "$_[0].$_[1]" }) }, path => '/jobs/flaky', timeout => scaled(60));
my $ok = grep { $_->{status} == 200 } @res;
is(scalar @res, 20, 'flaky: 20 answers');
ok($ok >= 18, "flaky at 50%, 10 attempts: $ok of 20 answered 200");
my @other = grep { $_->{status} != 200 && $_->{status} != 502 } @res;
ok(!@other, 'flaky: only 200 or 502') or diag(explain \@other);
my $flaky_results = redis_cmd('KEYS', "offload:{flaky}:result:*");
is(scalar @$flaky_results, 20, 'flaky: one result per job in redis');

# ---- the dead letters keep their 10,000 newest: the oldest go one by one
# as new ones come, each big job's body key with it (MAXLEN ~ left a week
# of body keys that no letter named, out of offloadctl purge's reach)
my $dead = 'offload:{abort}:dead';
redis_cmd('DEL', $dead);
redis_cmd('EVAL', <<'LUA', 1, $dead);
for i = 1, 10000 do
  local f = { 'id', string.format('%032x', i), 'payload', '' }
  if i <= 2 then
    f[#f + 1], f[#f + 2] = 'body', '5'
    redis.call('RPUSH', 'offload:{abort}:body:' .. f[2], 'x')
    redis.call('EXPIRE', 'offload:{abort}:body:' .. f[2], 604800)
  end
  redis.call('XADD', KEYS[1], '*', unpack(f))
end
LUA
my @big = map { sprintf 'offload:{abort}:body:%032x', $_ } 1 .. 2;
is(redis_cmd('EXISTS', @big), 2, '10,000 dead letters, the 2 oldest big');
$r = post_json('/jobs/abort', {}, scaled(20));
is($r->{status}, 502, 'one more job dies');
is(redis_cmd('XLEN', $dead), 10000, 'the dead letters stay 10,000');
is(redis_cmd('EXISTS', $big[0]), 0, 'the oldest went, and its body key');
is(redis_cmd('EXISTS', $big[1]), 1, 'the next one stays');
redis_cmd('XADD', 'offload:{abort}:jobs', '*', 'payload', '{}');
ok(wait_until(sub { redis_cmd('EXISTS', $big[1]) == 0 }, scaled(10),
    'bad job'), 'a bad job dead-lettered: the next oldest and its body go');
is(redis_cmd('XLEN', $dead), 10000, 'still 10,000');
my $last = redis_cmd('XREVRANGE', $dead, '+', '-', 'COUNT', 1)->[0][1];
is({ @$last }->{reason}, 'bad_job', 'the newest is the bad job');

# ---- the echo queue never noticed
is(post_json('/jobs/echo', { still => 'here' })->{status}, 200,
    'echo answers throughout');

finish();
