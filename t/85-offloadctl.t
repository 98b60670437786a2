#!/usr/bin/perl
# offloadctl against a real stack: queues, events (and -f), dead / retry /
# purge, replay (and --gdb), drain / resume, top (batch, and interactive
# in a tmux terminal), exit codes and --help.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 2; }
queue crash { handler crash; workers 1; max_attempts 1; }
queue quit { handler exit; workers 1; max_attempts 1; max_restarts 1 10s;
             restart_cooldown 10m; }
queue leak { handler leak; workers 1; }
queue an_echo_queue_of_a_long_name { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => 'location = /metrics { offload_metrics; }'),
    'stack ready');

my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $node = node_name();

sub run {
    my $out = `$ctl @_ 2>&1`;
    return ($? >> 8, $out, $? & 127);
}

# The lines of a table (its header first) whose column does not start
# under the header's word.
sub misaligned {
    my ($table, $word) = @_;
    my ($head, @rows) = split /\n/, $table;
    my $at = index($head, $word);
    return [ grep { substr($_, $at - 1, 2) !~ /^ \S/ } @rows ];
}

# ---- usage and exit codes
my ($rc, $out) = run('--help');
is($rc, 0, '--help: exit 0');
like($out, qr/^usage: offloadctl/, '--help prints the usage');
like($out, qr/^\s+replay JOB/m, 'and lists replay');
# every exit status a command can give is in the help and in the man page
# (t/15-exec: replay's 4)
like($out, qr/exit status: .*\b4 replay/s, 'the help names exit status 4');
like(slurp("$FindBin::Bin/../docs/man/offloadctl.8"),
    qr/^\.B 4\n\.BR replay :/m, 'so does offloadctl(8)');
# a command's --help is the usage (submit --help was an unknown option)
for my $cmd ('submit', 'dead', 'top', 'drain') {
    ($rc, $out) = run($cmd, '--help');
    ok($rc == 0 && $out =~ /^usage: offloadctl/, "$cmd --help: the usage")
        or diag("$rc $out");
}
($rc, $out) = run('no-such-command');
is($rc, 2, 'unknown command: exit 2');
($rc) = run('dead');
is($rc, 2, 'dead without a queue: exit 2');
($rc) = run('dead', "'bad queue!'");
is($rc, 2, 'dead with an invalid queue name: exit 2');
($rc) = run('top', '-s', 'bogus');
is($rc, 2, 'top with an unknown sort: exit 2');
# numbers are read whole: "abc" was taken as 0 (drain -t 0 does not wait)
for my $args ([ 'drain', '-t', 'abc', 'some-node' ],
              [ 'drain', '-t', '5s', 'some-node' ],
              [ 'drain', 'some-node', '-t', 'abc' ],
              [ 'events', '-n', 'x' ], [ 'events', '-n', '-1' ],
              [ 'top', '-b', '-n', '2x' ], [ 'top', '-b', '-d', '1x' ],
              [ 'top', '-b', '-d', '-1e300' ])
{
    ($rc, $out) = run(@$args);
    is($rc, 2, "@$args: exit 2");
    like($out, qr/wants (a whole number|seconds, from 0\.1 to 3600), not "/,
        "@$args: says why");
}
# a queue that is on no Redis is no empty queue
($rc, $out) = run('dead', 'no_such_queue');
is($rc, 1, 'dead of a queue that does not exist: exit 1');
like($out, qr/no queue no_such_queue/, 'and says so');
($rc, $out) = run('-r', '127.0.0.1:' . free_port(), 'queues');
is($rc, 1, 'Redis unreachable: exit 1');
{
    local $ENV{OFFLOAD_CONF} = sidecar_conf_file();
    my $plain = build_path('offloadctl');
    like(`$plain status 2>&1`, qr/^\Q$node\E /m,
        'without -c or -r: the config named by $OFFLOAD_CONF');
}

# ---- a crash: events, dead letters
post_json('/jobs/echo', { i => $_ }) for 1 .. 5;
my $r = post_json('/jobs/crash', { boom => 1 });
is($r->{status}, 502, 'crash job answered 502');
my $crashed = $r->{headers}{'x-offload-job-id'}
    // $r->{json}{error}{job_id};
ok(wait_until(sub { (node_doc()->{queues}{crash}{dead} // 0) == 1 },
    scaled(5), 'dead letter'), 'the node counts the dead letter');

($rc, $out) = run('queues');
is($rc, 0, 'queues: exit 0');
like($out,
    qr/^crash\s+\S+\s+1\s+0\s+0\s+\S+\s+\S+\s+\S+\s+\S+\s+1\s+0$/m,
    'queues: crash has one worker, no backlog, one dead letter, no retry')
    or diag($out);
like($out, qr/^echo\s+ok\s+2\s/m, 'queues: echo has two workers');
is_deeply(misaligned($out, 'STATE'), [], 'queues: a long queue name widens '
    . 'its column (every state under STATE)') or diag($out);
($rc, $out) = run('status');
is_deeply(misaligned(join("\n", grep { /^  / } split /\n/, $out), 'HANDLER'),
    [], 'status: every handler under HANDLER') or diag($out);
($rc, $out) = run('--json', 'queues');
is(json_decode($out)->{crash}{dead}, 1, 'queues --json');

($rc, $out) = run('events');
is($rc, 0, 'events: exit 0');
my $crash_line = qr/^\S+Z crash\s+\Q$node\E crash slot 0 pid \d+ /m;
like($out, qr/${crash_line}signal SIGSEGV job [0-9a-f]{32}/,
    'events shows the crash with its signal and job') or diag($out);
# a worker's exit code, once ("exit exit 3" before); a failed pool says why
# and for how long (it said nothing)
post_json('/jobs/quit', { code => 3 });
post_json('/jobs/quit', { code => 4 });
ok(wait_until(sub { (run('events'))[1] =~ /pool_failed/ }, scaled(10),
    'pool_failed'), 'the quit pool fails');
($rc, $out) = run('events');
like($out, qr/^\S+Z crash\s+\Q$node\E quit slot 0 pid \d+ exit 3 job /m,
    'events: a worker that exited 3 says "exit 3"') or diag($out);
like($out, qr/^\S+Z pool_failed\s+\Q$node\E quit 2 restarts in 10s, cooling down (?#
    )600s$/m, 'events: a failed pool, its restarts and '
    . 'cooldown') or diag($out);
($rc, $out) = run('--json', 'events', '-n', '50');
my @ev = map { json_decode($_) } split /\n/, $out;
my ($crash) = grep { $_->{type} eq 'crash' } @ev;
ok($crash && ref $crash->{report}{backtrace} eq 'ARRAY',
    'events --json: the crash report with its backtrace');

($rc, $out) = run('dead', 'crash');
is($rc, 0, 'dead: exit 0');
my ($job, $trace) =
    $out =~ /^\S+Z\s+([0-9a-f]{32})\s+1\s+signal\s+(\S+)\s+\{"boom":1\}/m;
ok($job, 'dead lists the job, its attempt, reason, trace and payload')
    or diag($out);
my %letter = @{ redis_cmd('XRANGE', 'offload:{crash}:dead', '-', '+')
    ->[0][1] };
is($trace, substr($letter{tp} // '', 3, 32),
    'and the trace id of the traceparent nginx gave the job')
    or diag($out);

# ---- events -f follows what happens next
my $follow_log = tmpdir() . '/follow.log';
my $follower = fork // die;
if ($follower == 0) {
    open STDOUT, '>', $follow_log;
    open STDERR, '>&', \*STDOUT;
    exec split(' ', $ctl), 'events', '-f', '-n', '0';
}
ok(wait_until(sub { redis_cmd('CLIENT', 'LIST') =~ /flags=b .*cmd=xread /
    }, scaled(10), 'follower blocked in XREAD'),
    'events -f running (blocked in XREAD)');
post_json('/jobs/crash', { second => 1 });
ok(wait_until(sub { slurp($follow_log) =~ /crash .*SIGSEGV/ }, scaled(10),
    'followed crash'), 'events -f prints a crash that happens while it '
    . 'follows') or diag(slurp($follow_log));
unlike(slurp($follow_log), qr/job \Q$crashed\E/,
    'events -f -n 0 printed nothing of what happened before');
kill 'TERM', $follower;
waitpid($follower, 0);
is($? >> 8, 0, 'events -f exits 0 on SIGTERM');

# ---- replay: the handler runs here; a crashing one crashes offloadctl
($rc, $out, my $sig) = run('replay', $job);
# (under ASan, its SEGV handler reports the crash and exits instead)
ok($sig == 11 || (sanitize() && $out =~ /AddressSanitizer: SEGV/),
    'replay of the crash job dies of SIGSEGV, as in production')
    or diag("rc $rc sig $sig $out");
like($out, qr/replaying job \Q$job\E \(dead letter of queue crash, attempt \d+\)/,
    'replay says what it runs');
# as README writes it: options may follow the job id
my $gdb = `$ctl replay $job --gdb 2>&1 </dev/null`;
like($gdb, qr/SIGSEGV/, 'replay --gdb runs it under gdb, which catches '
    . 'the SIGSEGV') or diag($gdb);
# a handler that calls exit() ends offloadctl: said, with its status
my ($quit) = grep { ($_->{payload} // '') =~ /"code":3/ }
    @{ stream_entries('offload:{quit}:dead') };
($rc, $out) = run('replay', $quit->{id});
is($rc, 3, 'replay of a job whose handler calls exit(3): exit 3');
like($out, qr/handler exit called exit\(3\)/, 'and says so') or diag($out);
($rc) = run('replay', 'f' x 32);
is($rc, 1, 'replay of an unknown job: exit 1');
`${\ build_path('offloadctl')} -r 127.0.0.1:${\ redis_port()} replay $job 2>&1`;
is($? >> 8, 2, 'replay without -c: exit 2');

# an echo job's dead letter, made by hand, for retry and replay
my $id = 'e' x 32;
my $now = int(time * 1000);
redis_cmd('XADD', 'offload:{echo}:dead', '*', v => 1, id => $id,
    payload => '{"again":true}', reply => 'offload:reply:none',
    deadline => $now + 30000, submitted => $now, attempt => 2, rid => '',
    reason => 'signal', dead_at => $now);
($rc, $out) = run('replay', $id);
is($rc, 0, 'replay of an echo job: exit 0');
like($out, qr/^\{"again":true\}$/m, 'prints the handler\'s output');

($rc, $out) = run('retry', 'echo', $id);
is($rc, 0, 'retry: exit 0');
like($out, qr/retried 1 dead letter/, 'retry says so');
ok(wait_until(sub {
    my $v = redis_cmd('GET', "offload:{echo}:result:$id");
    defined $v && $v =~ /^OR1 \Q$id\E 200 .*\n\{"again":true\}$/s;
}, scaled(5), 'retried result'), 'the retried job ran and stored its result');
is(redis_cmd('XLEN', 'offload:{echo}:dead'), 0, 'and left the dead letters');
($rc) = run('retry', 'echo', $id);
is($rc, 1, 'retry of a job that is not dead: exit 1');

($rc, $out) = run('purge', 'crash', '--all');
is($rc, 0, 'purge --all: exit 0');
like($out, qr/purged 2 dead letters of queue crash/, 'purge counts');
is(redis_cmd('XLEN', 'offload:{crash}:dead'), 0, 'the dead letters are gone');
($rc, $out) = run('dead', 'crash');
is($rc, 0, 'dead of a queue without dead letters: exit 0');
is($out, "no dead letters in queue crash\n", 'and says so, alone');

# ---- retry --all retries the dead letters there were, not those its own
# retries make: jobs of an unknown protocol version (bad_job) die again
my $n_bad = 200;
redis_cmds(map { [ 'XADD', 'offload:{echo}:dead', '*', v => 2,
    id => sprintf('%032x', 0xbad000 + $_), payload => '{}',
    reason => 'bad_job' ] } 1 .. $n_bad);
($rc, $out) = run('retry', 'echo', '--all');
is($rc, 0, 'retry --all of jobs that die again: exit 0');
like($out, qr/^retried $n_bad dead letters of queue echo$/m,
    "retried $n_bad dead letters, no more")
    or diag($out =~ /(retried \d+.*)/);
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{echo}:dead') == $n_bad
        && redis_cmd('XLEN', 'offload:{echo}:jobs') == 0
        && pending_jobs('echo') == 0 }, scaled(10), 'dead again'),
    'each of them dead again, once');
run('purge', 'echo', '--all');

# ---- submit --traceparent: the job carries the caller's trace context
my $tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
($rc, $out) = run('submit', 'crash', q('{"traced":1}'), '--traceparent',
    'zz' . substr($tp, 2));
is($rc, 2, 'submit --traceparent with a bad one: exit 2');
like($out, qr/invalid traceparent/, 'says why');
($rc, $out) = run('submit', 'crash', q('{"traced":1}'), '--traceparent',
    "'01" . substr($tp, 2) . "-later'");
is($rc, 0, 'submit --traceparent of a later version: exit 0') or diag($out);
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{crash}:dead') == 1 },
    scaled(10), 'traced dead letter'), 'the traced job crashed');
my %traced = @{ redis_cmd('XRANGE', 'offload:{crash}:dead', '-', '+')
    ->[0][1] };
is($traced{tp}, $tp, 'its entry carried the traceparent, as version 00');
($rc, $out) = run('dead', 'crash');
like($out, qr/\s0af7651916cd43dd8448eb211c80319c\s+\{"traced":1\}$/m,
    'dead shows its trace id') or diag($out);
run('purge', 'crash', '--all');

# ---- a terminal is shown what Redis holds, never told what to do: a
# payload or a node name written by anyone who can reach Redis carries
# escape sequences (a title, a screen clear, a C1 CSI as UTF-8)
my $hostile = "\e]0;pwned\a\e[2J\xc2\x9b31m";
my $bad = 'b' x 32;
redis_cmd('XADD', 'offload:{echo}:dead', '*', v => 1, id => $bad,
    payload => "x$hostile", reply => 'offload:reply:none',
    deadline => $now, submitted => $now, attempt => 1, rid => '',
    reason => 'signal', dead_at => $now);
redis_cmd('XADD', 'offload:{ctl}:events', '*', type => 'crash',
    node => "n$hostile", queue => 'echo', report => '{}');
sub on_tty {
    my $cmd = join ' ', $ctl, @_;
    return scalar `script -qec '$cmd' /dev/null 2>&1 </dev/null`;
}
for my $cmd ([ 'dead', 'echo' ], [ 'events', '-n', '5' ]) {
    my $shown = on_tty(@$cmd);
    like($shown, qr/\?\]0;pwned\?\?\[2J\?31m/,
        "@$cmd on a terminal: each control character a '?'")
        or diag($shown);
    unlike($shown, qr/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]/,
        "@$cmd on a terminal: no control character but newlines");
    ($rc, $out) = run(@$cmd);
    like($out, qr/\Q$hostile\E/, "@$cmd into a pipe: byte for byte");
}
like(on_tty('dead', 'echo', '--json'), qr/\\u001b\]0;pwned\\u0007/i,
    'dead --json on a terminal: escaped by JSON, not filtered twice');
run('purge', 'echo', $bad);

# ---- top: batch mode, sorted by memory
post_json('/jobs/leak', { mb => 24 });
ok(wait_until(sub {
    (node_doc()->{queues}{leak}{workers}[0]{rss} // 0) > 24 << 20 },
    scaled(5), 'leak rss'), 'a worker leaks');
($rc, $out) = run('top', '-b', '-s', 'memory');
is($rc, 0, 'top -b: exit 0');
my @rows = $out =~ /^\Q$node\E\s+(\S+)\s+\d+\s+\d+/mg;
is($rows[0], 'leak', 'top -b -s memory: the leaking worker first')
    or diag($out);
is(scalar @rows, 5, 'every worker listed (the quit pool\'s is down)');
ok(!grep({ length > 80 } split /\n/, $out), 'fits 80 columns');
like($out, qr/^NODE .* RST UPTIME$/m, 'whole: the last column is not cut');
like($out, qr/^\Q$node\E .* \d+(?:\.\d)?[smhd]\S*$/m, '... nor its figures');

# without -b into a pipe: frames, as -b prints, not a terminal's escape
# sequences (before: curses wrote them into the pipe until killed, and -n
# was ignored)
$out = `timeout ${\ scaled(10)} $ctl top -n 2 -d 0.1 2>&1`;
is($? >> 8, 0, 'top -n 2 into a pipe: exit 0') or diag($out);
is(scalar(() = $out =~ /^NODE /mg), 2, '... two frames');
unlike($out, qr/\e/, '... no escape sequence');
($rc, $out) = run('top', '-n', '0');
is($rc, 2, 'top -n 0: exit 2');

# ---- top: figures wider than their column are shortened (1235k, 12.3M),
# the rows stay aligned in 80 columns (a worker past 999999 jobs pushed
# every column after JOBS right)
{
    my $doc = node_doc();
    $doc->{node} = 'big';
    # a queue's figures are the freshest heartbeat's: the real node's next
    # one must not take them back (1 run in about 20 under load)
    $doc->{heartbeat} += 3_600_000;
    for my $q (values %{ $doc->{queues} }) {
        @$q{qw(backlog pending dead)} = (12345678, 1234567, 99999999);
        for my $w (@{ $q->{workers} }) {
            @$w{qw(jobs_ok restarts held fds)} = (123456789, 12345, 1234,
                123456);
        }
    }
    redis_cmd('SET', 'offload:{ctl}:node:big', json_encode($doc), 'EX', 60);
    redis_cmd('SADD', 'offload:{ctl}:nodes', 'big');
    ($rc, $out) = run('top', '-b');
    is($rc, 0, 'top -b with big figures: exit 0');
    ok(!grep({ length > 80 } split /\n/, $out), '... fits 80 columns')
        or diag($out);
    # each right-aligned figure ends under its header's word
    for my $head ('QUEUE', 'NODE') {
        my ($table) = $out =~ /^(\Q$head\E .*?)(?:\n\n|\n?\z)/ms;
        my ($h, @rows) = split /\n/, $table // '';
        my @bad;
        while ($h =~ /(\S+)/g) {
            my ($word, $end) = ($1, pos($h) - 1);
            next if $word =~ /^(?:QUEUE|STATE|NODE)$/;
            push @bad, grep { substr($_, $end, 1) eq ' '
                || substr($_ . ' ', $end + 1, 1) ne ' ' } @rows;
        }
        is_deeply(\@bad, [], "... the $head table's figures are aligned");
    }
    like($out, qr/^big +echo +0 +\d+ +\S+ +\S+ +123k +\d+ +1234 +123\.5M +12k +\S+$/m,
        '... descriptors 123k, held 1234, jobs 123.5M, restarts 12k');
    like($out, qr/^echo +ok +\d+ +12346k +1234567 .* 100\.0M$/m,
        '... a backlog of 12346k, dead letters 100.0M');
    redis_cmd('DEL', 'offload:{ctl}:node:big');
    redis_cmd('SREM', 'offload:{ctl}:nodes', 'big');
}

# ---- a document written by hand with figures no node writes: said as
# none, no arithmetic overflowed (a fuzzer found signed overflows and
# float casts out of range, undefined behaviour)
{
    my $doc = node_doc();
    $doc->{node} = 'odd';
    $doc->{heartbeat} += 3_600_000;
    @$doc{qw(started clock_offset_ms)} = ('-9223372036854775807', 1e300);
    $_->{backlog} = 1e300 for values %{ $doc->{queues} };
    redis_cmd('SET', 'offload:{ctl}:node:odd',
        json_encode($doc) =~ s/"-9223372036854775807"/-9223372036854775807/r,
        'EX', 60);
    redis_cmd('SADD', 'offload:{ctl}:nodes', 'odd');
    for my $cmd ('status', 'queues') {
        ($rc, $out) = run($cmd);
        is($rc, 0, "$cmd with out-of-range figures: exit 0") or diag($out);
        unlike($out, qr/runtime error|e\+?300|9223372036854775|\d{17,}/,
            '... no overflow, no such figure printed') or diag($out);
    }
    redis_cmd('DEL', 'offload:{ctl}:node:odd');
    redis_cmd('SREM', 'offload:{ctl}:nodes', 'odd');
}

# ---- top in a real terminal (tmux): draws, re-sorts on a key, q quits
SKIP: {
    skip 'tmux is not installed', 5 unless -x '/usr/bin/tmux';
    my $sock = tmpdir() . '/tmux.sock';
    my $tmux = "tmux -S $sock";
    system("$tmux new-session -d -x 80 -y 24 '$ctl top -s jobs'") == 0
        or die "tmux: $?";
    my $screen = '';
    ok(wait_until(sub {
        $screen = `$tmux capture-pane -p`;
        $screen =~ /sort: jobs/ && $screen =~ /^\Q$node\E/m;
    }, scaled(10), 'top drawn'), 'top draws in an 80x24 terminal')
        or diag($screen);
    system("$tmux send-keys m");
    ok(wait_until(sub {
        $screen = `$tmux capture-pane -p`;
        my ($first) = $screen =~ /^\Q$node\E\s+(\S+)/m;
        $screen =~ /sort: memory/ && ($first // '') eq 'leak';
    }, scaled(10), 'top re-sorted'), 'key m sorts by memory: the leak on top')
        or diag($screen);
    system("$tmux send-keys q");
    ok(wait_until(sub { system("$tmux has-session 2>/dev/null") != 0 },
        scaled(5), 'top quit'), 'key q quits');
    # -n in a terminal ends it after that many frames, as top's
    system("$tmux new-session -d -x 80 -y 24 '$ctl top -n 2 -d 0.2'") == 0
        or die "tmux: $?";
    ok(wait_until(sub { system("$tmux has-session 2>/dev/null") != 0 },
        scaled(5), 'top -n 2 quit'), 'top -n 2 in a terminal ends by itself');
    system("$tmux kill-server 2>/dev/null");
    pass('tmux cleaned up');
}

# ---- drain / resume
($rc, $out) = run('drain', 'no-such-node');
is($rc, 1, 'drain of an unknown node: exit 1');
($rc, $out) = run('drain', '-t', scaled(10), $node);
is($rc, 0, 'drain: exit 0') or diag($out);
like($out, qr/node \Q$node\E drained: 5 workers paused/, 'drain waits for '
    . 'every worker to pause');
# Prometheus can tell a drain from an outage (before: nothing said so)
sub drained_gauge { (http('GET', '/metrics')->{content} // '')
    =~ /^offload_node_drained\{node="\Q$node\E"\} (\d)$/m ? $1 : '' }
ok(wait_until(sub { drained_gauge() eq '1' }, scaled(5), 'gauge 1'),
    'offload_node_drained 1');
# nginx answers no_workers for a queue only drained nodes serve (it reads
# the registry each second: a job it takes before then waits in the queue,
# so each try asks for a short deadline); a job submitted to Redis
# directly waits
ok(wait_until(sub { (http('POST', '/jobs/echo', '{}',
    { 'X-Offload-Timeout' => 1 })->{json}{error}{code} // '') eq 'no_workers'
    }, scaled(5), 'no_workers'),
    'nginx: 503 no_workers while the node is drained');
# the flag lives while its node does: a week after it was last read
my $flag = "offload:{ctl}:drain:$node";
my $ttl = redis_cmd('TTL', $flag);
ok($ttl > 604000 && $ttl <= 604800, "the drain flag has a week's TTL ($ttl)");
redis_cmd('EXPIRE', $flag, 100);
ok(wait_until(sub { redis_cmd('TTL', $flag) > 604000 }, scaled(5),
    'flag kept'), 'its live node keeps it a week ahead');
my $before;
wait_until(sub { defined($before = node_doc()->{queues}{echo}{backlog}) },
    scaled(5), 'the backlog known');
chomp(my $parked = `$ctl submit echo '{"parked":1}' 2>&1`);
like($parked, qr/^[0-9a-f]{32}$/, 'offloadctl submit while drained');
ok(wait_until(sub {
    (node_doc()->{queues}{echo}{backlog} // 0) == ($before // 0) + 1 },
    scaled(5), 'backlog'), 'a drained node leaves a new job in the queue');
($rc, $out) = run('resume', $node, '-t', scaled(10));
is($rc, 0, 'resume: exit 0') or diag($out);
ok(wait_until(sub { (run('result', 'echo', $parked))[1] eq
    qq({"parked":1}\n) }, scaled(10), 'parked result'),
    'after resume the job is run');
ok(wait_until(sub { http('POST', '/jobs/echo', '{}')->{status} == 200 },
    scaled(5), 'resumed'), 'nginx: 200 again after resume');
ok(wait_until(sub { drained_gauge() eq '0' }, scaled(5), 'gauge 0'),
    'offload_node_drained 0');

done_testing();
