#!/usr/bin/perl
# handler exec: a queue's jobs run by a program in any language, one
# long-lived process per worker, JSON lines on its stdin and stdout.  The
# Python and Node examples of docs/HANDLERS.md answer through nginx; the
# process's stderr is logged with its job; its failures are a worker's
# crash (retried, dead-lettered, with its signal or exit code and the
# reason in the crash report); timeout, memory_limit and
# max_jobs_per_worker apply to it; a command that cannot run is a crash
# loop under restart intensity; no process outlives its supervisor.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $py = '/usr/bin/python3';
my $node = -x '/usr/bin/node' ? '/usr/bin/node' : '/usr/bin/nodejs';
my $mis = "$py $FindBin::Bin/exec/misbehave.py";
my $fast = 'max_restarts 100 1s; restart_backoff 10ms 10ms;';

my $queues = <<"CONF";
queue pyrev { handler exec; workers 2;
              command "$py $root/sdk/python/examples/reverse.py"; }
queue noderev { handler exec; workers 1;
                command $node "$root/sdk/node/examples/reverse.js"; }
queue pyodd { handler exec; workers 1;
              command "$py $FindBin::Bin/exec/unprintable.py"; }
queue nodeodd { handler exec; workers 1;
                command $node "$FindBin::Bin/exec/unprintable.js"; }
queue mis { handler exec; command "$mis"; max_attempts 2; $fast }
queue mis1 { handler exec; command "$mis"; max_attempts 1; $fast }
queue slow { handler exec; command "$mis"; timeout 1s; max_attempts 1; }
queue mem { handler exec; command "$mis"; memory_limit 100m; }
queue recycle { handler exec; command "$mis"; max_jobs_per_worker 2; }
queue echo { handler echo; workers 1; }
queue pyecho { handler exec; workers 1;
               command "$py $root/sdk/python/examples/echo.py"; }
CONF

start_redis();
start_sidecar(conf => $queues);
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');

my $log = tmpdir() . '/sidecar.log';

sub worker { (node_doc() || {})->{queues}{$_[0]}{workers}[$_[1] // 0] || {} }

# gone, or a zombie nobody has reaped yet
sub running {
    my $stat = slurp("/proc/$_[0]/stat");
    return $stat =~ /^\S+ \(.*\) [^Z]/;
}

# Sends a job that first says a line of its own (misbehave.py), and waits
# until a handler process of the queue has logged that line: that process
# has this job, and is past reading it.  Returns the socket, that process's
# pid and its worker's (0 and 0 when the line does not come).  Not the node
# document: it is written every heartbeat, so "busy" there may be the
# queue's previous job, and a process killed before this job reaches it
# dies between jobs, which is no attempt of this one.
my $marks = 0;
sub start_job {
    my ($queue, $payload) = @_;
    my $mark = "start_job " . ++$marks;
    my $s = send_post("/jobs/$queue", json_encode({ %$payload, say => $mark }));
    my $said = qr/\] (\d+) worker \Q$queue\E:\d+: handler pid (\d+): /
        . qr/\Q$mark\E \(job /;
    my ($worker, $handler);
    wait_until(sub { ($worker, $handler) = slurp($log) =~ $said; $handler },
        scaled(10), "$queue runs the job of \"$mark\"");
    return ($s, $handler // 0, $worker // 0);
}

# ---- docs/HANDLERS.md shows the files run here, as they are
my $doc = slurp("$root/docs/HANDLERS.md");
for my $ex ([ Python => python => 'sdk/python/examples/reverse.py' ],
            [ Node => js => 'sdk/node/examples/reverse.js' ]) {
    my ($lang, $fence, $file) = @$ex;
    my ($shown) = $doc =~ /^\#\# [ ] Write [ ] a [ ] handler [ ] in [ ] $lang\n
                           .*? ^```$fence\n (.*?) ^```$/msx;
    is($shown, slurp("$root/$file"), "HANDLERS.md shows $file as it is");
}

# ---- the examples, through nginx
is((node_doc() || {})->{queues}{pyrev}{handler}, 'exec',
    'the registry names the handler exec');
# the worker is registered once forked, its process once started: the
# document of a heartbeat in between has the one without the other
my $w;
wait_until(sub { $w = worker('pyrev'); $w->{handler_pid} }, scaled(10),
    'pyrev\'s handler_pid in the registry');
ok($w->{handler_pid} && $w->{handler_pid} != $w->{pid},
    'the registry shows the worker\'s handler process');
like(slurp("/proc/$w->{handler_pid}/cmdline") =~ tr/\0/ /r,
    qr{^\Q$py\E \S+/reverse\.py $}, 'which runs the command, no shell');
# while python starts it has its modules open for a moment: wait for the
# set to settle (a descriptor leaked from the worker never closes); the
# SDK's run() keeps the protocol's pipes on descriptors of its own, 1 on
# stderr's pipe and 0 on /dev/null
my %fd;
my $settled = sub {
    my @pipes = grep { /^pipe:/ } values %fd;
    my %distinct = map { $_ => 1 } @pipes;
    ($fd{0} // '') eq '/dev/null' && keys(%distinct) == 3
        && @pipes == keys(%fd) - 1
};
wait_until(sub {
    %fd = map { m{/(\d+)$}; ($1 => readlink($_) // '?') }
        glob("/proc/$w->{handler_pid}/fd/*");
    $settled->()
}, scaled(15), 'the handler\'s descriptors');
ok($settled->(), 'it has its three pipes, /dev/null on 0, and none of the '
    . 'worker\'s descriptors')
    or diag(join ', ', map { "$_ -> $fd{$_}" } sort keys %fd);

for my $q (qw(pyrev noderev)) {
    my $r = post_json("/jobs/$q", { text => "abc\x{e9}" });
    is($r->{status}, 200, "$q: 200") or diag($r->{content});
    is_deeply($r->{json}, { text => "\x{e9}cba" }, "$q: reversed");

    $r = post_json("/jobs/$q", "{\n  \"text\":\n \"multi\\nline\"\n}\n");
    is_deeply($r->{json}, { text => "enil\nitlum" },
        "$q: a payload written on several lines is one request line");

    # a number longer than Python's int() takes (4300 digits) is a payload
    # like any other (before: the process died on it, the job was rerun
    # and answered 502 worker_crashed, and three such jobs stopped the pool)
    $r = post_json("/jobs/$q", '{"text":"abc","n":' . '9' x 4301 . '}');
    is($r->{status}, 200, "$q: a 4301-digit number in the payload: 200")
        or diag($r->{content});
    is_deeply($r->{json}, { text => 'cba' }, "$q: and the job's result");

    $r = post_json("/jobs/$q", { text => 42 });
    is($r->{status}, 422, "$q: 422 without a string text");
    is($r->{json} && $r->{json}{error}{code}, 'bad_input',
        "$q: the handler's code");
    like($r->{json} && $r->{json}{error}{message}, qr/string "text"/,
        "$q: and its message");

    # stderr: one log line, tagged with the worker and the job
    $r = post_json("/jobs/$q", { text => 'logged' });
    my $id = $r->{headers}{'x-offload-job-id'};
    my $tagged = qr/worker \Q$q\E:\d+: handler pid \d+: /
        . qr/reversing 6 characters \(job \Q$id\E, request [0-9a-f]+, /
        . qr/trace [0-9a-f]{32}\)/;
    ok(wait_until(sub { slurp($log) =~ $tagged }, scaled(5),
        "$q stderr logged"), "$q: its stderr is logged with queue, slot, "
        . 'job') or diag(slurp($log));
}

post_json('/jobs/mis', { say => "tab\there, escape \e[31m, cr \r." });
ok(wait_until(sub { slurp($log) =~ /: tab\there, escape \?\[31m, cr \?\.\x20/ },
    scaled(5), 'stderr sanitized'), 'control characters are logged as ?');

# an entry written straight into Redis, its request id a forged log line
# and a C1 CSI: the line that carries it stays one line, shown not obeyed
my $forged = sprintf '%032x', 0xf0f0;
redis_cmd('XADD', 'offload:{mis}:jobs', '*', v => 1, id => $forged,
    payload => '{"say":"forged rid"}', deadline => int(time * 1000) + 60000,
    rid => "r1\n2026-01-01 00:00:00.000 [alert] 1 FORGED\xc2\x9b1m");
my $shown = qr/r1\?2026-01-01 00:00:00\.000 \[alert\] 1 FORGED\?\?1m/;
ok(wait_until(sub {
    slurp($log) =~ /: forged rid \(job $forged, request $shown\)$/m },
    scaled(5), 'forged rid logged'), 'a request id is logged on its line, '
    . 'each control character a ?') or diag(slurp($log));
unlike(slurp($log), qr/^2026-01-01/m, 'no forged line');

# a line over 1900 bytes: logged cut there, the rest dropped
post_json('/jobs/mis', { say => 'long ' . 'y' x 3000 });
ok(wait_until(sub { slurp($log) =~ /: long y{1895} \[cut\] \(job / },
    scaled(5), 'long line logged'),
    'a stderr line over 1900 bytes is logged cut there');
unlike(slurp($log), qr/handler pid \d+: y+ /, 'the rest of it is not logged');

# 300 KB of stderr during one job: read as it comes, no deadlock
my $r = post_json('/jobs/mis', { chatter => 3000 }, scaled(10));
is($r->{status}, 200, 'a job that writes 300 KB to stderr is answered');
like(slurp($log), qr/chatter 02999 x{86} \(job /, 'and all of it logged');

$r = post_json('/jobs/mis', { fail => 'no_way' });
is($r->{status}, 422, 'a JobError: 422');
is($r->{json} && $r->{json}{error}{code}, 'no_way', 'with its code');

# An exception with no text (its str(), its message, its toString()
# raise): the job fails, named for its type, and the process goes on
# (before: the SDK's own error report raised, and the process died).
for my $q (qw(pyodd nodeodd)) {
    $r = post_json("/jobs/$q", {});
    my $pid = $r->{json} && $r->{json}{pid};
    ok($pid, "$q: a job answers its process's pid");
    $r = post_json("/jobs/$q", { unprintable => 1 }, scaled(10));
    is($r->{status}, 422, "$q: an unprintable exception: 422")
        or diag($r->{content});
    is_deeply($r->{json} && $r->{json}{error},
        { code => 'handler_error', message => 'Unprintable' },
        "$q: handler_error, named for its type");
    $r = post_json("/jobs/$q", { unprintable_message => 1 }, scaled(10));
    is_deeply($r->{json} && $r->{json}{error},
        { code => 'bad_input', message => 'JobError' },
        "$q: a JobError whose message has no text: its code, named for its "
        . "type") or diag($r->{content});
    # a library's line on stdout is logged, not read as the answer (the
    # Node SDK's process.stdout.write wrote into the protocol: the job
    # crashed its process on every attempt)
    $r = post_json("/jobs/$q", { library_stdout => 1 }, scaled(10));
    is($r->{json} && $r->{json}{pid}, $pid,
        "$q: a library writing to stdout: the job answers") or
        diag($r->{content});
    ok(wait_until(sub { slurp($log) =~ /a line of a library on \S*stdout/ },
        scaled(5), 'the line logged'), "$q: the library's line is logged");
    $r = post_json("/jobs/$q", {}, scaled(10));
    is($r->{json} && $r->{json}{pid}, $pid, "$q: the process goes on");
}

# ---- the process killed under a job: the job runs again on a new one
my ($s, $victim, $worker_pid) = start_job('mis', { sleep => 2 });
ok($victim, "mis runs a job in handler pid $victim");
kill 'KILL', $victim if $victim;    # pid 0: this test's process group
my $a = read_answer($s, scaled(20));
is($a->{status}, 200, 'killed mid-job: the job is answered') or
    diag($a->{content});
is($a->{json} && $a->{json}{attempt}, 2, 'by its second attempt');
isnt($a->{json} && $a->{json}{pid}, $victim, 'in a new process');
my ($crash) = grep { ($_->{report}{pid} // 0) == $worker_pid }
    @{ events('crash') };
is($crash && $crash->{report}{signal}, 'SIGKILL',
    'the crash report names the process\'s signal');
like($crash && $crash->{report}{handler_error},
    qr/handler process $victim killed by SIGKILL/, 'and the process');
is($crash && $crash->{report}{attempt}, 1, 'and the attempt');

# ---- out of attempts: dead-lettered with the signal
($s, $victim) = start_job('mis1', { sleep => 2 });
kill 'KILL', $victim if $victim;
$a = read_answer($s, scaled(20));
is($a->{status}, 502, 'max_attempts 1, killed: 502');
my $e = $a->{json} && $a->{json}{error} || {};
is($e->{code}, 'worker_crashed', 'worker_crashed');
is($e->{signal}, 'SIGKILL', 'naming SIGKILL');
like($e->{handler_error}, qr/killed by SIGKILL/, 'and the process');
my $dead = stream_entries('offload:{mis1}:dead');
is(scalar @$dead, 1, 'one dead letter');
my $report = json_decode($dead->[0]{report} // '') || {};
is($report->{signal}, 'SIGKILL', 'its report names the signal');

# offloadctl replay runs the command in the foreground, on the payload
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl replay $dead->[0]{id} 2>&1`;
is($? >> 8, 0, 'offloadctl replay of the dead letter: exit 0') or diag($out);
like($out, qr/^\{"pid":\d+,"attempt":1\}$/m, 'it prints the answer');
# at the attempt its entry says, as the run that failed saw it
my $now = int(time * 1000);
redis_cmd('XADD', 'offload:{mis}:dead', '*', v => 1, id => 'a' x 32,
    payload => '{}', reply => 'offload:reply:none', deadline => $now + 30000,
    submitted => $now, attempt => 2, rid => '', reason => 'signal',
    dead_at => $now);
$out = `$ctl replay ${\ ('a' x 32)} 2>&1`;
like($out, qr/^\{"pid":\d+,"attempt":2\}$/m,
    'a dead letter of attempt 2 is replayed as attempt 2') or diag($out);
like($out, qr/\(dead letter of queue mis, attempt 2\)/, 'and says so');

# ---- the process exits under a job
$r = post_json('/jobs/mis1', { exit => 7 }, scaled(20));
is($r->{status}, 502, 'exit mid-job: 502');
is($r->{json} && $r->{json}{error}{reason}, 'exit', 'reason exit');
like($r->{json} && $r->{json}{error}{handler_error},
    qr/exited with code 7/, 'naming the exit code');
is($r->{json} && $r->{json}{error}{exit_code}, 7,
    'and giving it, as "exit_code" (docs/HANDLERS.md)');
my ($exit) = grep { ($_->{report}{exit_code} // 0) == 7 }
    @{ events('crash') };
ok($exit && $exit->{queue} eq 'mis1', 'crash report: exit_code 7');
$dead = stream_entries('offload:{mis1}:dead');
$out = `$ctl replay $dead->[-1]{id} 2>&1`;
is($? >> 8, 4, 'replayed, the process exits: offloadctl exits 4');
like($out, qr/handler process \d+ exited with code 7/, 'saying why');
# the process's own 4 too, though a worker leaves with 4 for a broken answer
$r = post_json('/jobs/mis1', { exit => 4 }, scaled(20));
is($r->{json} && $r->{json}{error}{exit_code}, 4,
    'a process\'s own exit code 4 is given too');

# ---- answers that are not answers
for my $bad ([ json => qr/not JSON/ ], [ id => qr/answered for id/ ],
             [ both => qr/both of "result" and "error"/ ],
             [ neither => qr/neither of "result" and "error"/ ]) {
    $r = post_json('/jobs/mis1', { bad => $bad->[0] }, scaled(20));
    is($r->{status}, 502, "bad $bad->[0]: 502");
    like($r->{json} && $r->{json}{error}{handler_error}, $bad->[1],
        "bad $bad->[0]: the reason") or diag($r->{content});
    ok($r->{json} && !exists $r->{json}{error}{exit_code},
        "bad $bad->[0]: no exit_code (the worker's own is no process's)")
        or diag($r->{content});
}
like(slurp($log), qr/handler process \d+ answered a line that is not JSON/,
    'the log says why the process was replaced');

# ---- a result as deep as a payload may be (512): its answer line, one
# level more, is no broken answer; a deeper result fails its job alone
my $deepest = '[' x 512 . ']' x 512;
$r = http('POST', '/jobs/pyecho', $deepest);
is($r->{status}, 200, 'a 512-deep payload through an exec echo: 200')
    or diag($r->{content});
is($r->{content}, $deepest, 'answered as it came');
my $mis1_pid = post_json('/jobs/mis1', {})->{json}{pid} // 0;
$r = post_json('/jobs/mis1', { deep => 512 });
is($r->{status}, 200, 'a handler answering 512 deep: 200');
$r = post_json('/jobs/mis1', { deep => 513 });
is($r->{status}, 500, 'one answering 513 deep: 500') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'bad_result', 'bad_result');
like($r->{json} && $r->{json}{error}{message}, qr/nests deeper than 512/,
    'saying why');
is(post_json('/jobs/mis1', {})->{json}{pid} // -1, $mis1_pid,
    'the same process answers the next job: it was not replaced');

# ---- timeout: the worker and its process are killed
my $slow_worker;
($s, $victim, $slow_worker) = start_job('slow', { sleep => 30 });
$a = read_answer($s, scaled(20));
is($a->{status}, 504, 'timeout: 504');
is($a->{json} && $a->{json}{error}{code}, 'job_timeout', 'job_timeout');
ok(wait_until(sub { !running($victim) && !running($slow_worker) }, 2,
    'timed out worker and process gone'),
    'the timed-out worker and its process are both gone');

# ---- memory_limit counts the process's RSS
my $mem_worker = worker('mem')->{pid};
my $mem_child = worker('mem')->{handler_pid};
$r = post_json('/jobs/mem', { grow => 150 });
is($r->{status}, 200, 'a job that grows the process by 150 MB: 200');
ok(wait_until(sub { my $w = worker('mem');
    $w->{pid} && $w->{pid} != $mem_worker && $w->{handler_pid} }, scaled(10),
    'mem recycled'), 'then its worker is recycled (memory_limit 100m)');
ok(!running($mem_child), 'and its process is gone');
isnt(worker('mem')->{handler_pid}, $mem_child, 'a new process runs');
my ($recycle) = grep { $_->{queue} eq 'mem' } @{ events('recycle') };
is($recycle && $recycle->{report}{reason}, 'memory_limit',
    'recycle event: memory_limit');

# a job that grows it past twice the limit is killed, as RLIMIT_AS would
$r = post_json('/jobs/mem', { grow => 250 }, scaled(20));
is($r->{status}, 502, 'a job that grows the process by 250 MB: 502');
is($r->{json} && $r->{json}{error}{code}, 'out_of_memory', 'out_of_memory');
like(slurp($log),
    qr/handler process RSS \d+ MB over twice memory_limit 100 MB: killed/,
    'the log says why');

# and so is one that answers a line longer than that, kept by its worker
$r = post_json('/jobs/mem', { flood => 250 }, scaled(20));
is($r->{status}, 502, 'a job that answers a 250 MB line: 502');
is($r->{json} && $r->{json}{error}{code}, 'out_of_memory', 'out_of_memory');
like(slurp($log), qr/handler process answer line \d+ MB over twice (?x:
    )memory_limit 100 MB: killed/, 'the log says why');

# ---- max_jobs_per_worker recycles the process with the worker
my @pids = map { post_json('/jobs/recycle', {})->{json}{pid} } 1 .. 3;
is($pids[0], $pids[1], 'jobs 1 and 2 in the same process');
isnt($pids[2], $pids[1], 'job 3 in a new one (max_jobs_per_worker 2)');

is(post_json('/jobs/echo', {})->{status}, 200, 'echo answered throughout');

# ---- a command that cannot run: a crash loop, not a busy loop.  -t
# refuses a command that names no program; a running sidecar takes it (the
# program may come later: a mount, a deploy), as it takes a script whose
# "#!" names no program, which fails only when run
my $file = sidecar_conf_file();
my $conf = slurp($file);
spew($file, $conf . "queue typo { handler exec; command \"nosuch-handler\"; }\n");
my $t_out = `${\ build_path('offload-sidecar')} -t -c $file 2>&1`;
isnt($? >> 8, 0, 'a command naming no program: -t fails');
like($t_out, qr/:\d+: queue "typo": command "nosuch-handler": no such/,
    'saying so, with its line') or diag($t_out);
my $script = tmpdir() . '/handler';
spew($script, "#!/nonexistent/interpreter\n");
chmod 0755, $script;
spew($file, $conf . <<"CONF");
queue nosuch { handler exec; command "/nonexistent/handler --flag";
               max_restarts 3 10s; restart_backoff 50ms 100ms;
               restart_cooldown 1m; }
queue dies { handler exec; command "/bin/sh -c 'echo dying >&2; exit 3'";
             max_restarts 3 10s; restart_backoff 50ms 100ms;
             restart_cooldown 1m; }
queue unstarted { handler exec; command "$script";
                  max_restarts 100 1m; restart_backoff 1m 1m; }
CONF
kill 'HUP', sidecar_pid();

# restarting (its pool not failed yet) and listed by the node, its stream
# never made: the server's fault, not a typo in the queue's name (before:
# 404 unknown_queue, "no worker serves this queue")
ok(wait_until(sub { @{ events('crash') } && grep { $_->{queue} eq 'unstarted' }
    @{ events('crash') } }, scaled(10), 'unstarted crashed'),
    'unstarted: its first process could not run');
# (once nginx has read the registry that lists it: every second)
ok(wait_until(sub { ($r = post_json('/jobs/unstarted', {}))->{status} == 503
    }, scaled(5), 'unstarted 503'), 'unstarted: a job is answered 503')
    or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'no_workers', 'no_workers');
like($r->{json} && $r->{json}{error}{message}, qr/has started/,
    'no worker of the queue has started');
ok(($r->{headers}{'retry-after'} // 0) >= 1, 'with a Retry-After');
for my $q (qw(nosuch dies)) {
    ok(wait_until(sub { ((node_doc() || {})->{queues}{$q}{state} // '')
        eq 'failed' }, scaled(10), "$q failed"), "$q: the pool fails");
    my @crashes = grep { $_->{queue} eq $q } @{ events('crash') };
    is(scalar @crashes, 4, "$q: after 4 crashes (max_restarts 3)");
    my $before = (node_doc() || {})->{queues}{$q}{restarts};
    my $until = time + 1;
    wait_until(sub { time > $until }, 2, 'a second');
    is((node_doc() || {})->{queues}{$q}{restarts}, $before,
        "$q: no restart for a second after");
    is(scalar(grep { $_->{queue} eq $q } @{ events('crash') }), 4,
        "$q: nor a crash");
    my $rep = $crashes[0]{report} || {};
    if ($q eq 'nosuch') {
        # failed too, its stream never made: 503 (before: 404)
        $r = post_json('/jobs/nosuch', {});
        is($r->{status}, 503, 'nosuch: a job is answered 503')
            or diag($r->{content});
        is($r->{json} && $r->{json}{error}{code}, 'no_workers',
            'nosuch: no_workers');
        is($rep->{exit_code}, 127, 'nosuch: exit code 127');
        like($rep->{handler_error}, qr{cannot[ ]run[ ]the[ ]command[ ]
            "/nonexistent/handler[ ]--flag"[ ]of[ ]queue[ ]nosuch:[ ]No[ ]such
            [ ]file}x,
            'nosuch: the report says why');
    } else {
        is($rep->{exit_code}, 3, 'dies: the shell\'s exit code 3');
        like(slurp($log), qr/handler pid \d+: dying/, 'dies: its last words');
    }
}

# ---- the supervisor SIGKILLed: no handler process outlives it
# (the node document is written every heartbeat: a worker restarted after
# the crashes above may not be in it yet)
sub handler_pids {
    return grep { $_ } map { $_->{handler_pid} }
        map { @{ $_->{workers} || [] } } values %{ node_doc()->{queues} };
}
my @children;
wait_until(sub { @children = handler_pids(); @children >= 8 }, scaled(10));
ok(@children >= 8, scalar(@children) . ' handler processes running');
($s) = start_job('mis', { sleep => 30 });
my $t0 = time;
kill 'KILL', sidecar_pid();
ok(wait_until(sub { !grep { running($_) } @children }, 1,
    'handler processes gone'),
    'every handler process is gone within 1 s of the supervisor\'s SIGKILL');
diag(sprintf 'handler processes gone %.0f ms after the SIGKILL',
    (time - $t0) * 1000);
close $s;
stop_sidecar();
finish();
