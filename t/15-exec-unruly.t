#!/usr/bin/perl
# handler exec: programs that misbehave outside a job's answer.  A line
# written to stdout between jobs is the process's failure, not the next
# job's (which runs on a fresh process, on its first attempt), and so is a
# stdin closed between jobs; a job's
# deadline too far away to count in microseconds is waited for (a year at
# most), not given up at once; a process that floods its stderr neither
# stops its worker's loop (jobs are answered, SIGTERM stops the sidecar
# at once) nor fills the log (lines are rate-limited, the dropped ones
# counted).  Started with its own stdio closed (offloadctl replay), the
# bridge still gives the process its three pipes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $py = '/usr/bin/python3';
my $stray = "$py $FindBin::Bin/exec/stray.py";
my $deaf = "$py $FindBin::Bin/exec/deaf.py";
my $reverse = "$py $root/sdk/python/examples/reverse.py";

# a process that answers one job and exits, a moment later, not reading
# the next request
my $oneshot = tmpdir() . '/oneshot.pl';
spew($oneshot, <<'PL');
$| = 1;
my $l = <STDIN>;
exit 0 unless defined $l;
my ($id) = $l =~ /"id":"([^"]+)"/;
print qq({"id":"$id","result":{"pid":$$}}\n);
select undef, undef, undef, 0.3;
exit 0;
PL

# a one-shot process that writes 3000 lines of stderr to each job first
my $noisy = tmpdir() . '/noisy.pl';
spew($noisy, <<'PL');
$| = 1;
my $l = <STDIN>;
exit 0 unless defined $l;
my ($id) = $l =~ /"id":"([^"]+)"/;
print STDERR "noise $_\n" for 1 .. 3000;
print qq({"id":"$id","result":{}}\n);
select undef, undef, undef, 0.3;
exit 0;
PL

# a process that writes part of an answer, then waits
my $partial = tmpdir() . '/partial.sh';
spew($partial, "while read -r l; do printf '{\"id\":'; sleep 100; done\n");

start_redis();
my $t0 = time;
start_sidecar(conf => <<"CONF");
shutdown_timeout 30s;
queue stray { handler exec; workers 1; command "$stray"; max_attempts 1;
              max_restarts 100 1s; restart_backoff 10ms 10ms; }
queue deaf { handler exec; workers 1; command "$deaf"; max_attempts 1; }
queue far { handler exec; workers 1; command "$stray"; timeout off;
            max_attempts 1; }
queue flood { handler exec; workers 1;
              command "/bin/sh -c '(yes spam >&2 &); exec $reverse'"; }
queue echo { handler echo; workers 1; }
queue partial { handler exec; workers 1; timeout 1s; max_attempts 1;
                command "/bin/sh $partial"; }
queue oneshot { handler exec; workers 1; command "/usr/bin/perl $oneshot";
                max_attempts 1; max_restarts 100 1s;
                restart_backoff 10ms 10ms; }
queue noisy { handler exec; workers 1; command "/usr/bin/perl $noisy";
              max_attempts 1; max_restarts 100 1s;
              restart_backoff 10ms 10ms; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');
ok(wait_streams(qw(stray deaf far flood partial oneshot noisy)),
    'every queue served (its stream made)');

my $log = tmpdir() . '/sidecar.log';

# ---- a line on stdout between jobs: the process's failure, no job's
my $r = post_json('/jobs/stray', { stray => 200 });
is($r->{status}, 200, 'a job answered, a stray line to follow');
my $first = $r->{json} && $r->{json}{pid} // 0;
# it says so on stderr, unless it is killed for it first
my $said = qr/handler pid $first: wrote a stray line|handler process $first /
    . qr/wrote to its stdout/;
ok(wait_until(sub { slurp($log) =~ $said }, scaled(5),
    'the stray line written'), 'the process wrote its stray line');
$r = post_json('/jobs/stray', {}, scaled(10));
is($r->{status}, 200, 'the next job is not blamed for it')
    or diag($r->{content});
is($r->{json} && $r->{json}{attempt}, 1, 'it runs on its first attempt');
isnt($r->{json} && $r->{json}{pid}, $first, 'in a new process');
my $what = 'wrote to its stdout between jobs: "a line nobody asked for"; '
    . 'killed';
like(slurp($log), qr/handler process $first \Q$what\E/,
    'the log says what the process did');
my ($lost) = grep { ($_->{report}{handler_error} // '') =~ /\b$first\b/ }
    @{ events('crash') };
ok($lost && !$lost->{report}{job_id}, 'a crash of its slot, under no job')
    or diag(explain($lost));
# offloadctl events says it too, not only the worker's pid that followed
my $ctl_cmd = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $events = `$ctl_cmd events -n 50 2>&1`;
like($events, qr/^.* crash +\S+ stray slot \d+ pid \d+ .*: handler (?x:
    )process $first \Q$what\E/m,
    'offloadctl events: the crash line says what the handler process did')
    or diag($events);

# ---- a stdin closed between jobs: the process's failure, no job's
$r = post_json('/jobs/deaf', {}, scaled(10));
is($r->{status}, 200, 'a job answered, then its stdin closed')
    or diag($r->{content});
my $deaf_pid = $r->{json} && $r->{json}{pid} // 0;
ok(wait_until(sub { !-e "/proc/$deaf_pid/fd/0" }, scaled(5),
    "process $deaf_pid closes its stdin"), 'the process closed its stdin');
$r = post_json('/jobs/deaf', {}, scaled(10));
is($r->{status}, 200, 'the next job is not blamed for it')
    or diag($r->{content});
is($r->{json} && $r->{json}{attempt}, 1, 'it runs on its first attempt');
isnt($r->{json} && $r->{json}{pid}, $deaf_pid, 'in a new process');
is(scalar @{ stream_entries('offload:{deaf}:dead') }, 0,
    'no job dead-lettered');
$what = 'killed by SIGKILL (closed its stdin between jobs)';
like(slurp($log), qr/handler process $deaf_pid \Q$what\E/,
    'the log says what the process did');
my $left = 'left: its handler process killed by SIGKILL';
like(slurp($log),
    qr/worker deaf:0: pid \d+ $left \(\w+\) between jobs, holding no job/,
    'and the worker\'s end names the process, between jobs (it was not '
    . 'stopping)');

# ---- deadlines too far to scale to us (timeout off): no deadline
my $n = 0;
for my $deadline ('9300000000000000', '999999999999999999') {
    my $id = sprintf '%032x', ++$n;
    redis_cmd('XADD', 'offload:{far}:jobs', '*', v => 1, id => $id,
        payload => '{}', reply => 'offload:reply:t', deadline => $deadline,
        submitted => int(time * 1000), attempt => 1, rid => "r$n");
    my $res;
    wait_until(sub {
        $res = redis_cmd('GET', "offload:{far}:result:$id");
        defined $res && !ref $res;
    }, scaled(10), "result of $id");
    like($res // '', qr/^OR1 $id 200 /, "deadline $deadline: answered")
        or diag($res);
}

# ---- started with its stdio closed, the bridge's pipes take 0, 1 and 2
# unless it moves them: offloadctl replay of a job on a queue no sidecar
# serves (its entry still in the stream), stdin, stdout and stderr closed
my $conf = tmpdir() . '/replay.conf';
spew($conf, 'redis 127.0.0.1:' . redis_port() . ";\n"
    . "queue idle { handler exec; command \"$stray\"; }\n");
my $idle = sprintf '%032x', 99;
redis_cmd('XADD', 'offload:{idle}:jobs', '*', v => 1, id => $idle,
    payload => '{}', reply => 'offload:reply:t', attempt => 1, rid => 'r',
    deadline => int(time * 1000) + 600_000, submitted => int(time * 1000));
my $ctl = build_path('offloadctl') . " -c $conf replay $idle";
like(`$ctl 2>&1`, qr/^\{"pid": \d+, "attempt": 1\}$/m,
    'offloadctl replay runs an exec job');
system('/bin/sh', '-c', "exec $ctl <&- >&- 2>&-");
is($? >> 8, 0, 'and so it does with its stdin, stdout and stderr closed');

# ---- an answer never ended by its newline (a buffer never flushed): the
# timeout says so
$r = post_json('/jobs/partial', { a => 1 }, scaled(10));
is($r->{status}, 504, 'an answer without its newline: 504 at the timeout');
like(($r->{json} || {})->{error}{message} // '', qr/its handler process had written 6 bytes of an answer without the newline that ends it \(not flushed\?\)/,
    'saying the process wrote part of an answer') or diag($r->{content});
like(slurp($log), qr/ran past the 1000 ms timeout, killing pid \d+; its handler process had written 6 bytes of an answer/,
    'and the log too');

# ---- a process that runs one job and exits: the request written to it
# meanwhile, which it never read, is no job's failure (before: that job
# failed an attempt, "closed its stdout before answering"; 5 of 36 jobs
# dead-lettered in a helper's run)
my @ids = map { sprintf '%032x', 200 + $_ } 1 .. 5;
for my $id (@ids) {
    redis_cmd('XADD', 'offload:{oneshot}:jobs', '*', v => 1, id => $id,
        payload => '{}', reply => 'offload:reply:t', attempt => 1,
        rid => "r$id", deadline => int(time * 1000) + 60_000,
        submitted => int(time * 1000));
}
my %answers;
ok(wait_until(sub {
    for my $id (@ids) {
        my $res = redis_cmd('GET', "offload:{oneshot}:result:$id");
        $answers{$id} = $res if defined $res && !ref $res;
    }
    keys %answers == @ids;
}, scaled(20), 'five one-shot answers'), 'five jobs of a one-shot process '
    . 'answered');
is(scalar(grep { /^OR1 \S+ 200 / } values %answers), 5, '... each 200, on '
    . 'its first attempt') or diag(explain(\%answers));
like(slurp($log), qr/handler process \d+ exited with code 0 \(exited between jobs, before it read the next one's request\)/,
    '... the log says the process left between jobs');

# ---- one-shot processes that each write a burst of stderr: the
# allowance is the slot's, not renewed with each worker (before: a
# process that crashed in a loop, or left after each job, had every line
# of every burst logged: a log filled at 160 GB a day, found by a helper)
my $t_noisy = time;
@ids = map { sprintf '%032x', 300 + $_ } 1 .. 5;
for my $id (@ids) {
    redis_cmd('XADD', 'offload:{noisy}:jobs', '*', v => 1, id => $id,
        payload => '{}', reply => 'offload:reply:t', attempt => 1,
        rid => "r$id", deadline => int(time * 1000) + 60_000,
        submitted => int(time * 1000));
}
ok(wait_until(sub { !grep { !redis_cmd('EXISTS',
    "offload:{noisy}:result:$_") } @ids }, scaled(30), 'noisy answers'),
    'five jobs of one-shot processes writing 3000 lines of stderr each '
    . 'answered');
my $noise = () = slurp($log) =~ /: noise \d+ /g;
my $allowed = 5000 + 100 * (time - $t_noisy) + 100;
cmp_ok($noise, '<=', $allowed, "$noise of their 15000 lines logged: one "
    . 'burst of 5000 for the slot, then 100 a second');

# ---- a process that floods its stderr
$r = post_json('/jobs/flood', { text => 'abc' }, scaled(10));
is($r->{status}, 200, 'a job on a worker whose process floods its stderr '
    . 'is answered') or diag($r->{content});
is_deeply($r->{json}, { text => 'cba' }, 'as it should be');
ok(wait_until(sub { slurp($log) =~ /lines of stderr not logged/ },
    scaled(5), 'dropped lines counted'), 'the lines not logged are counted');
my $spams = () = slurp($log) =~ /: spam$/mg;
my $most = 5000 + 100 * (time - $t0) + 100;
cmp_ok($spams, '<=', $most, "$spams lines of spam logged: a burst of 5000, "
    . 'then 100 a second');

my $t = time;
my $status = stop_sidecar(scaled(40));
my $took = time - $t;
is($status, 0, 'the sidecar exits 0 on SIGTERM');
cmp_ok($took, '<', scaled(5), sprintf('within %.1f s, not the 30 s of '
    . 'shutdown_timeout', $took));

finish();
