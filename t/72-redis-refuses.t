#!/usr/bin/perl
# Redis refuses a worker's writes (maxmemory reached under noeviction, the
# recommended policy) and takes them again later.
#
# 1. A job's completion is refused (OOM): the worker keeps it and sends it
#    again, backing off, until Redis takes it.  Once memory is free the
#    entry leaves the pending list, the result is stored and the waiting
#    client is answered.  (Before: the completion was thrown away, the
#    entry stayed pending, its idle time refreshed by every claim round, so
#    nobody ran or answered it until the worker restarted.)  The
#    supervisor's heartbeat is refused too: one line when that begins,
#    with the error, one when it ends, with the count.  (Before: a line
#    per refused write, three a heartbeat.)
# 2. The same for a job failed for now: the command that moves it to the
#    retry set is refused (BUSY: a script ran too long), kept, and sent
#    again; the job's next attempt answers its client.  (Before: pending
#    for good, as in 1.)  The registry's queue stats read, refused too, is
#    logged as the heartbeat is.  (Before: a line a heartbeat.)
# 3. A refusal that does not pass by itself (a script error: the job's
#    record is not a hash): tried 5 times, then an error answer tried 5
#    times, then the entry is dead-lettered: no longer pending, listed
#    with the refusal in its report.  (Before: pending for good.)
# 4. The stream is deleted while Redis refuses XGROUP CREATE MKSTREAM: the
#    worker retries with backoff and says so once.  (Before: 55,448 tries
#    and twice as many log lines in about a second.)
# 5. An async job's big result cannot be staged (RPUSH denied): its error
#    answer ends its record failed.  (Before: the answer left the record
#    'running' until its lifetime ran out.)
# 6. Moving a failed job to the retry set is refused for good (XACK
#    denied by an ACL): after 5 tries the entry is dead-lettered and its
#    waiting client answered 500 at once; the dead letter refused 5 times
#    too, the worker recycles so that the entry is read again.  (Before:
#    the command was dropped, the entry left pending under a live worker,
#    the client waited out its 60 s deadline.)
# 7. The same move refused for good by its ZADD (the retry set is not a
#    sorted set): the script acks last, so each refused try did nothing and
#    the entry stays pending; after 5 tries it is dead-lettered, once, and
#    its client answered 500.  (Before: the first try's XACK stayed done,
#    so the next found its entry no longer pending and gave the job up
#    without a dead letter.)
# 8. A job out of attempts whose dead letter Redis refuses for a while (an
#    ACL without XADD on the dead-letter stream, lifted after the first
#    refusal): its client is answered its handler's failure, and sent
#    again, the job is dead-lettered once.  (Before: the first try's XACK
#    stayed done; the next found its entry no longer pending and gave the
#    job up: no dead letter, the client answered 500 not_settled.)
# 9. A worker dies holding a job out of attempts while the same ACL stands:
#    the supervisor's refused dead letter leaves the entry pending (logged,
#    not sent again); the slot's next worker runs it again, and once XADD is
#    allowed the job is dead-lettered once and its client answered 502.
#    (Before: the script's XACK stayed done: the job vanished, neither
#    pending, dead-lettered nor answered.)
# 10. A worker killed while idle holding a job it had not begun, its hand
#    back refused (XADD denied): the entry stays pending and the slot's
#    next worker runs it from its history.  (Before: the hand back's XACK
#    and XDEL stayed done: the job vanished, its client waiting out its
#    deadline.)
# 11. A job out of attempts whose result Redis refuses for a while (SET
#    denied on all but the registry's keys): the dead script writes its
#    dead letter after the result, so sent again it adds one.  (Before:
#    the first try's dead letter stayed: two dead letters, two jobs for a
#    retry.)
# 12. MULTI refused for good (an ACL without it, a renamed command): a
#    plain job's completion, a transaction, runs its commands one by one
#    (EXEC without MULTI); the worker says once that it completes by the
#    script from then on, and no job waits.  (Before: every completion was
#    refused and sent again by the script 0.1 s later, no job read
#    meanwhile, an episode logged for each.)
# 13. EXEC refused for good: Redis 7 discards the transaction (EXECABORT
#    ... because of: NOPERM), and the worker completes by the script from
#    then on, as in 12.  (Before: as in 12.)
# 14. A due retry's move back to its queue refused by its ZREM (an ACL
#    without it): nothing is added; the job waits in its retry set, its
#    client unanswered, the refusal logged once, and runs once ZREM is
#    allowed.  (Before: each pass added the job again, its ZREM refused:
#    a copy run every 200 ms, an error line every pass.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

start_redis(args => [ '--maxmemory-policy', 'noeviction' ]);
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue flaky { handler fail_until; max_attempts 3; retry_backoff 100ms 100ms; }
queue crashy { handler crash; max_attempts 1; max_restarts 100 1s;
               restart_backoff 10ms 10ms; }
CONF
ok(start_jobs_nginx(server => <<'NGX'), 'stack ready');
    offload_timeout 60s;
    client_max_body_size 8m;
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
NGX

my $log = tmpdir() . '/sidecar.log';
my $stream = 'offload:{echo}:jobs';

# the worker's lines; the supervisor's registry's
sub log_lines { scalar(() = slurp($log) =~ /worker echo:0:.*\n/g) }
sub registry_lines { scalar(() = slurp($log) =~ / registry[ :].*\n/g) }
sub log_tail { my @l = split /\n/, slurp($log); join "\n", @l[$_[0] .. $#l] }
# entries pending in a queue's group; -1 when Redis does not say (BUSY)
sub pending {
    my $p = redis_cmd('XPENDING', "offload:{$_[0]}:jobs", 'workers');
    return ref $p eq 'ARRAY' ? $p->[0] : -1;
}
sub log_count { my ($re) = @_; scalar(() = slurp($log) =~ /$re/g) }

my $worker = worker_pids()->{echo}[0];
ok($worker, "echo worker $worker");

# ---- 1. a refused completion --------------------------------------------

kill 'STOP', $worker;
my $s = send_post('/jobs/echo', '{"n":"refused"}');
ok(wait_until(sub { redis_cmd('XLEN', $stream) > 0 }, scaled(10),
    'job in the stream'), 'the job is in the stream');
my $job_id = stream_entries($stream)->[-1]{id};
redis_cmd('CONFIG', 'SET', 'maxmemory', '1');
kill 'CONT', $worker;

ok(wait_until(sub { log_count(qr/completing entry \S+ .*OOM/) > 0 },
    scaled(10), 'completion refused'), 'redis refused the completion')
    or diag(slurp($log));
# (its own line, written right after the refusal's: waited for)
ok(wait_until(sub { log_count(qr/kept and sent again/) > 0 }, scaled(5),
    'kept'), 'the worker keeps it') or diag(slurp($log));
is(pending('echo'), 1, 'the entry is pending meanwhile');

# a while refused: bounded tries, one line for the episode
my $lines = log_lines();
my $registry = registry_lines();
my $t0 = time;
wait_until(sub { time - $t0 >= 1.5 }, 3, '1.5 s refused');
my $more = log_lines() - $lines;
cmp_ok($more, '<', 10, "$more worker log lines in 1.5 s of refusals")
    or diag(log_tail($lines));
$more = registry_lines() - $registry;
cmp_ok($more, '<', 2, "$more registry log lines in 1.5 s of refusals")
    or diag(log_tail($lines));

redis_cmd('CONFIG', 'SET', 'maxmemory', '0');
my $freed = time;
ok(wait_until(sub { pending('echo') == 0 }, scaled(5),
    'pending list empty'), 'the entry is acked once memory is free')
    or diag(explain(redis_cmd('XPENDING', $stream, 'workers')));
diag(sprintf 'completed %.2f s after memory was freed', time - $freed);
ok(redis_cmd('EXISTS', "offload:{echo}:result:$job_id"),
    "its result is stored (job $job_id)");
my $a = read_answer($s, scaled(10));
is($a->{status}, 200, 'the waiting client is answered 200');
is($a->{json}{n}, 'refused', 'with its own result');
like(slurp($log), qr/nothing refused is held any more/,
    'the end of the episode is logged');
is(log_count(qr/ registry \S+: redis refuses the heartbeat: OOM/), 1,
    'the registry says once that its heartbeat is refused, with the error');
my $taken = qr/ registry \S+: redis takes the heartbeat again, /;
ok(wait_until(sub { log_count(qr/${taken}after refusing it [1-9]\d* times/)
    == 1 }, scaled(5), 'registry episode over'),
    'and once that it is taken again, with the count') or diag(log_tail(0));

my $r = post_json('/jobs/echo', { n => 'after' });
is($r->{status}, 200, 'a later job is answered');

# ---- 2. a refused retry -------------------------------------------------

# Under maxmemory Redis refuses no write of a script whose first write is
# a no-op XACK (the settling scripts'): the retry set's script is refused
# when another script runs too long (BUSY), stopped here by SCRIPT KILL.
# The entry must reach the stopped worker's blocked read (else the worker,
# thawed, would read it while Redis answers BUSY): when the read's BLOCK
# ran out just as the worker was stopped, that job is let run and
# another one tried.
my $flaky = worker_pids()->{flaky}[0];
my $delivered;
for my $try (1 .. 3) {
    kill 'STOP', $flaky;
    $s = send_post('/jobs/flaky', '{"attempt_ok":2}');
    $delivered = wait_until(sub { pending('flaky') == 1 }, scaled(2),
        'flaky job delivered');
    last if $delivered;
    kill 'CONT', $flaky;
    read_answer($s, scaled(10));
}
ok($delivered, 'a job that fails once reached the stopped worker');
redis_cmd('CONFIG', 'SET', 'busy-reply-threshold', '100');
my $busy = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "connect: $!";
my $spin = "local t = redis.call('TIME')[1] + 30 "
    . "while tonumber(redis.call('TIME')[1]) < tonumber(t) do end return 1";
print $busy "*3\r\n\$4\r\nEVAL\r\n\$" . length($spin) . "\r\n$spin\r\n"
    . "\$1\r\n0\r\n";
ok(wait_until(sub { my $r = eval { redis_cmd('PING') };
    ref $r && ($r->{error} // '') =~ /^BUSY/ }, scaled(5), 'redis busy'),
    'redis answers BUSY');
kill 'CONT', $flaky;
ok(wait_until(sub { log_count(qr/worker\ flaky:0:\ redis\ refused\ a\ command
    \ \(EVAL\):\ BUSY/x) > 0 }, scaled(10), 'retry refused'),
    'redis refused moving the failed job to the retry set');
$t0 = time;
wait_until(sub { time - $t0 >= 0.5 }, 1, 'refused a while');
redis_cmd('SCRIPT', 'KILL');
close $busy;
ok(wait_until(sub { pending('flaky') == 0 }, scaled(5),
    'flaky pending list empty'), 'the entry leaves the pending list');
$a = read_answer($s, scaled(10));
is($a->{status}, 200, 'the client is answered by the next attempt')
    or diag(explain $a);
is($a->{json}{attempt}, 2, 'attempt 2');
# the registry's queue stats read, refused at each heartbeat (200 ms) of
# the 0.5 s and more: one line when that begins, one when it ends
is(log_count(qr/ registry \S+: redis refuses the queue stats read: BUSY/),
    1, 'the registry says once that Redis is busy');
my $again = qr/ registry \S+: redis takes the queue stats read again, /;
ok(wait_until(sub { log_count(qr/${again}after refusing it [1-9]\d* times/)
    == 1 }, scaled(5), 'stats read again'), 'and once that it reads again');
redis_cmd('CONFIG', 'SET', 'busy-reply-threshold', '5000');

# ---- 3. a refusal that does not pass -----------------------------------

kill 'STOP', $worker;
$r = post_json('/async/echo', { n => 'doomed' });
is($r->{status}, 202, 'an async job is accepted');
my $doomed = $r->{headers}{'x-offload-job-id'};
my $entry = (grep { ($_->{id} // '') eq $doomed }
    @{ stream_entries($stream) })[0];
ok($entry, "job $doomed in the stream");
redis_cmd('SET', record_key($doomed), 'not a hash');
kill 'CONT', $worker;
ok(wait_until(sub { pending('echo') == 0 }, scaled(40), 'doomed settled'),
    'the entry leaves the pending list');
my @dead = grep { ($_->{id} // '') eq $doomed }
    @{ stream_entries('offload:{echo}:dead') };
is(scalar @dead, 1, 'it is dead-lettered');
like($dead[0]{report} // '', qr/could not be stored in Redis: WRONGTYPE/,
    'its report says why');
like(slurp($log), qr/refused its completion 5 times.*answering an error/s,
    'the log says the completion was given up');
like(slurp($log), qr/refused its error answer too.*dead-lettered/,
    'and the error answer, and the dead letter');
$r = post_json('/jobs/echo', { n => 'after doomed' });
is($r->{status}, 200, 'the worker answers later jobs');

# ---- 4. the consumer group cannot be made again -------------------------

redis_cmd('CONFIG', 'SET', 'maxmemory', '1');
redis_cmd('DEL', $stream);
ok(wait_until(sub { log_count(qr/consumer group gone/) > 0 }, scaled(10),
    'group gone'), 'the worker finds its group gone');
$lines = log_lines();
$t0 = time;
wait_until(sub { time - $t0 >= 1 }, 2, '1 s');
$more = log_lines() - $lines;
cmp_ok($more, '<', 20, "$more worker log lines in 1 s without a group")
    or diag(log_tail($lines));
ok(alive('sidecar'), 'the sidecar runs');

redis_cmd('CONFIG', 'SET', 'maxmemory', '0');
ok(wait_until(sub { (post_json('/jobs/echo', { n => 'back' }, 5)->{status}
    // 0) == 200 }, scaled(15), 'job after the group is back'),
    'jobs run again once the group can be made');

# ---- 5. a big result that cannot be staged ------------------------------

$worker = worker_pids()->{echo}[0];
kill 'STOP', $worker;
$r = post_json('/async/echo', { n => 'x' x 1_200_000 });
is($r->{status}, 202, 'an async job with a big result is accepted');
my $big = $r->{headers}{'x-offload-job-id'} // '';
redis_cmd('ACL', 'SETUSER', 'default', '-rpush');
kill 'CONT', $worker;
ok(wait_until(sub { log_count(qr/result\ of\ job\ \Q$big\E\ .*could
    \ not\ be\ stored\ after/x) > 0 }, scaled(20), 'staging given up'),
    'staging the result is given up') or diag(log_tail(0));
redis_cmd('ACL', 'SETUSER', 'default', '+rpush');
ok(wait_until(sub { (redis_cmd('HGET', record_key($big), 'status') // '')
    eq 'failed' }, scaled(10), 'record failed'),
    'its record ends failed, not running')
    or diag(explain(redis_cmd('HGETALL', record_key($big))));
like(redis_cmd('GET', "offload:{echo}:result:$big") // '',
    qr/result_not_stored/, 'its stored answer is the error');

# ---- 6. a retry refused for good ----------------------------------------

# XACK denied: the retry script and the dead letter (a no-op XACK first)
# and the completion are each refused the same way
$flaky = worker_pids()->{flaky}[0];
redis_cmd('ACL', 'SETUSER', 'default', '-xack');
$s = send_post('/jobs/flaky', '{"attempt_ok":2}');
my $t6 = time;
$a = read_answer($s, scaled(20));
is($a->{status}, 500, sprintf('the client is answered 500 after %.1f s, '
    . 'not at its 60 s deadline', time - $t6)) or diag(explain $a);
like(slurp($log), qr/worker\ flaky:0:\ redis\ refused\ a\ command\ \(EVAL\)
    \ of\ entry\ \d+-\d+\ 5\ times\ \(ERR.*can.t\ run.*given\ up:\ dead-lettered/x,
    'the give-up is logged, with its entry');
ok(wait_until(sub { log_count(qr/worker\ flaky:0:\ redis\ refused.*
    given\ up;\ recycling\ this\ worker/x) > 0 }, scaled(20),
    'recycling'), 'its dead letter refused too: the worker recycles')
    or diag(log_tail(0));
redis_cmd('ACL', 'SETUSER', 'default', '+xack');
ok(wait_until(sub { my $p = worker_pids()->{flaky}[0];
    $p && $p != $flaky }, scaled(20), 'flaky worker replaced'),
    'a new worker takes its place');
like(slurp($log), qr/worker flaky:0: pid $flaky recycled \(unsettled_entry\)/,
    'the supervisor says why');
ok(wait_until(sub { pending('flaky') == 0 }, scaled(10), 'flaky settled'),
    'nothing is left pending');
$r = post_json('/jobs/flaky', { attempt_ok => 2 });
is($r->{status}, 200, 'the flaky queue runs jobs again');

# ---- 7. a retry refused for good by its ZADD ----------------------------

# the dead letters of a queue that $re matches
sub dead_letters {
    my ($queue, $re) = @_;
    return grep { join(' ', %$_) =~ $re }
        @{ stream_entries("offload:{$queue}:dead") };
}

redis_cmd('SET', 'offload:{flaky}:retry', 'not a sorted set');
$s = send_post('/jobs/flaky', '{"attempt_ok":2,"case":7}');
$t6 = time;
$a = read_answer($s, scaled(20));
is($a->{status}, 500, sprintf('the client is answered 500 after %.1f s, '
    . 'not at its 60 s deadline', time - $t6)) or diag(explain $a);
like(slurp($log), qr/worker\ flaky:\d+:\ redis\ refused\ a\ command\ \(EVAL\)
    \ of\ entry\ \d+-\d+\ 5\ times\ \(WRONGTYPE.*given\ up:\ dead-lettered/x,
    'the give-up is logged, with its entry');
my @seven = dead_letters('flaky', qr/"case":7/);
is(scalar @seven, 1, 'the entry is dead-lettered once');
like($seven[0]{report} // '', qr/WRONGTYPE/, 'its report says why');
is(pending('flaky'), 0, 'nothing is left pending');
redis_cmd('DEL', 'offload:{flaky}:retry');
$r = post_json('/jobs/flaky', { attempt_ok => 2 });
is($r->{status}, 200, 'the flaky queue runs jobs again');

# ---- 8. a dead letter refused for a while -------------------------------

# XADD allowed on the queues' streams only (the module's submissions, due
# retries), not on their dead-letter streams
sub deny_dead_xadd {
    redis_cmd('ACL', 'SETUSER', 'default', '-xadd',
        '(+xadd ~offload:{*}:jobs)');
}
sub allow_xadd { redis_cmd('ACL', 'SETUSER', 'default', 'clearselectors',
    '+xadd') }

# A job of flaky out of attempts ("case" $case) while $deny stands: Redis
# refuses its dead script ($what), lifted then ($allow).  The client is
# answered its handler's failure; the result is stored before the dead
# letter, so it may come from the refused try: the dead letter comes with
# the try sent again, once.  Returns the dead letter.
sub refused_dead_script {
    my ($case, $what, $deny, $allow) = @_;
    my $refused_re = qr/worker\ flaky:\d+:\ redis\ refused\ a
        \ command\ \(EVAL\)/x;
    my $refused = log_count($refused_re);
    $deny->();
    my $sock = send_post('/jobs/flaky', qq({"attempt_ok":9,"case":$case}));
    ok(wait_until(sub { log_count($refused_re) > $refused }, scaled(10),
        "$what refused"), "redis refuses the $what of a job out of attempts")
        or diag(log_tail(0));
    $allow->();
    my $answer = read_answer($sock, scaled(10));
    is($answer->{json}{error}{code} // '', 'not_yet',
        "the client is answered its handler's failure ($answer->{status})")
        or diag(explain $answer);
    ok(wait_until(sub { dead_letters('flaky', qr/"case":$case/) > 0 },
        scaled(10), 'flaky dead letter'), 'the job is dead-lettered');
    my @dead = dead_letters('flaky', qr/"case":$case/);
    is(scalar @dead, 1, 'once');
    is(pending('flaky'), 0, 'nothing is left pending');
    return $dead[0] // {};
}

my $eight = refused_dead_script(8, 'dead letter', \&deny_dead_xadd,
    \&allow_xadd);
is($eight->{reason} // '', 'retries_exhausted', 'for its attempts');

# ---- 9. a dead worker's dead letter refused -----------------------------

deny_dead_xadd();
$s = send_post('/jobs/crashy', '{"case":9}');
ok(wait_until(sub { log_count(qr/failing\ job\ \S+\ \(entry\ \S+\):\ redis
    \ refused\ it\ \(.*can.t\ access.*the\ entry\ stays\ pending/x) > 0 },
    scaled(10), 'supervisor refused'),
    "the supervisor's dead letter is refused, logged")
    or diag(log_tail(0));
is(pending('crashy'), 1, 'the entry stays pending');
allow_xadd();
ok(wait_until(sub { dead_letters('crashy', qr/"case":9/) > 0 }, scaled(10),
    'crashy dead letter'), 'once XADD is allowed, the job is dead-lettered');
$a = read_answer($s, scaled(10));
is($a->{status}, 502, 'its client is answered 502') or diag(explain $a);
is(scalar(dead_letters('crashy', qr/"case":9/)), 1, 'once');
is(pending('crashy'), 0, 'nothing is left pending');

# ---- 10. a hand back refused --------------------------------------------

$worker = worker_pids()->{echo}[0];
kill 'STOP', $worker;
$s = send_post('/jobs/echo', '{"case":10}');
ok(wait_until(sub { pending('echo') == 1 }, scaled(5), 'echo delivered'),
    'a job reached the stopped worker');
redis_cmd('ACL', 'SETUSER', 'default', '-xadd');
kill 'KILL', $worker;
ok(wait_until(sub { log_count(qr/handing back the jobs of \S+: .*can.t run/)
    > 0 }, scaled(10), 'hand back refused'), 'its hand back is refused')
    or diag(log_tail(0));
allow_xadd();
$a = read_answer($s, scaled(10));
is($a->{status}, 200, 'the next worker runs the job') or diag(explain $a);
is($a->{json}{case}, 10, 'with its own result');
is(pending('echo'), 0, 'nothing is left pending');

# ---- 11. a dead letter's result refused for a while --------------------

# SET allowed on the registry's keys only, not on the queues' results: the
# dead script's result is refused; its dead letter, written after it, is
# not made yet, so sent again the script adds one dead letter, not two
refused_dead_script(11, 'result',
    sub { redis_cmd('ACL', 'SETUSER', 'default', '-set',
        '(+set ~offload:{ctl}:*)') },
    sub { redis_cmd('ACL', 'SETUSER', 'default', 'clearselectors', '+set') });

# ---- 12. and 13. MULTI, then EXEC, refused for good ---------------------

for my $case ([ 12, 'multi' ], [ 13, 'exec' ]) {
    my ($n, $cmd) = @$case;
    # a worker that has not given up transactions yet
    my $old = worker_pids()->{echo}[0];
    kill 'KILL', $old;
    my $new;
    ok(wait_until(sub { $new = worker_pids()->{echo}[0];
        $new && $new != $old && pending('echo') == 0
        && (post_json('/jobs/echo', { warm => $n })->{status} // 0) == 200 },
        scaled(15), 'a new echo worker'), "$n: a new echo worker");
    my $episodes = log_count(qr/kept and sent again/);
    redis_cmd('ACL', 'SETUSER', 'default', "-$cmd");
    my $t0 = time;
    my @r = map { post_json('/jobs/echo', { n => $_ }, 10) } 1 .. 10;
    my $s = time - $t0;
    redis_cmd('ACL', 'SETUSER', 'default', "+$cmd");
    is(scalar(grep { ($_->{status} // 0) == 200
        && ($_->{json}{n} // 0) > 0 } @r), 10,
        sprintf('%d: %s refused: ten jobs answered in %.2f s', $n,
            uc $cmd, $s));
    is(log_count(qr/worker echo:0: MULTI or EXEC refused \(NOPERM/),
        $n - 11, "$n: the worker says once that it completes by the "
        . 'script from then on');
    cmp_ok(log_count(qr/kept and sent again/) - $episodes, '<=', 1,
        "$n: one completion refused, not one a job");
    is(pending('echo'), 0, "$n: nothing left pending");
}
is(post_json('/jobs/echo', { after => 'transactions' })->{status}, 200,
    'jobs run on');

# ---- 14. a due retry's move back refused by its ZREM ---------------------

redis_cmd('ACL', 'SETUSER', 'default', '-zrem');
my $retries = 'offload:{flaky}:retry';
my $refusal = qr/moving the due retries of \Q$retries\E back failed: ERR/
    . qr/.*can.t run/;
my $works = qr/moving the due retries of \Q$retries\E back works again/;
my $worked = log_count($works);
$s = send_post('/jobs/flaky', '{"attempt_ok":2}');
ok(wait_until(sub { log_count($refusal) > 0 }, scaled(10), 'refused move'),
    '14: the move back is refused') or diag(log_tail(0));
my $refused_at = time;
ok(!IO::Select->new($s)->can_read(1), '14: the client waits');
is(redis_cmd('ZCARD', $retries), 1, '14: its job waits in the retry set');
is(redis_cmd('XLEN', 'offload:{flaky}:jobs'), 0,
    '14: and nowhere on its queue');
is(log_count($refusal), 1, sprintf('14: the refusal logged once in %.1f s '
    . 'of passes', time - $refused_at));
redis_cmd('ACL', 'SETUSER', 'default', '+zrem');
$a = read_answer($s, scaled(10));
is($a->{status}, 200, '14: allowed again, the job runs and answers 200')
    or diag(explain $a);
ok(wait_until(sub { log_count($works) == $worked + 1 }, scaled(5),
    'works again'), '14: and that is logged');
is(redis_cmd('ZCARD', $retries), 0, '14: its retry set empty');

finish();
