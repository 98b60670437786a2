#!/usr/bin/perl
# handler exec with wait_ready: a program that loads for a while (a model)
# before it can answer says {"ready":true} first (the Python and Node SDKs
# do when the worker asks, OFFLOAD_WAIT_READY=1), and its worker reads no
# job before: a job queued during a 2 s load with the queue's timeout at
# 1 s is answered once the process is ready, not killed as a job that ran
# too long.  The process's stderr is read meanwhile (more than its pipe
# holds, or the load would never end).  A process that never says it is
# killed at init_timeout; one that says something else first, or exits
# first, fails its worker's start: each a crash of its slot.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $py = "/usr/bin/python3 $FindBin::Bin/exec/slow_start.py";
my $node = "/usr/bin/node $FindBin::Bin/exec/slow_start.js";
my $sidecar = build_path('offload-sidecar');
my $dir = tmpdir();

# ---- -t: wait_ready is exec's
for my $case (
    [ 'echo', "queue q {\n handler echo;\n wait_ready on;\n}\n",
      qr/:3: queue "q": "wait_ready" needs "handler exec" \(its handler is "echo"\)/ ],
    [ 'maybe', "queue q {\n handler exec;\n command \"$py 0\";\n"
          . " wait_ready maybe;\n}\n",
      qr/:4: invalid value "maybe" in "wait_ready"/ ],
) {
    my ($name, $text, $want) = @$case;
    spew("$dir/$name.conf", $text);
    my $out = `$sidecar -t -c $dir/$name.conf 2>&1`;
    is($? >> 8, 1, "-t refuses wait_ready: $name");
    like($out, $want, "-t: wait_ready: $name: says why, with file:line")
        or diag($out);
}

start_redis();
# the streams exist already (a restart of a node that served them): the
# jobs below are queued while the processes load (a stream is made at the
# heartbeat after its first worker started, which may come after them)
for my $q (qw(py node pyquick nodequick)) {
    redis_cmd('XGROUP', 'CREATE', "offload:{$q}:jobs", 'workers', '$',
        'MKSTREAM');
}
# the load: long enough for the stack to be up and the jobs sent during it
my $load = scaled(3);
# (the pools that never start fail: not waited for)
start_sidecar(want => { py => 1, node => 1, slow => 1, echo => 1 },
    conf => <<"CONF");
shutdown_timeout 30s;
queue py { handler exec; workers 1; command "$py $load"; wait_ready on;
           timeout 1s; init_timeout 20s; max_attempts 1; }
queue node { handler exec; workers 1; command "$node $load"; wait_ready on;
             timeout 1s; init_timeout 20s; max_attempts 1; }
queue never { handler exec; workers 1; command "/bin/sleep 300";
              wait_ready on; init_timeout 500ms; max_restarts 1 60s; }
queue chatty { handler exec; workers 1; wait_ready on; max_restarts 1 60s;
               command "/bin/sh -c 'echo hello; exec sleep 300'"; }
queue quits { handler exec; workers 1; wait_ready on; max_restarts 1 60s;
              command "/bin/sh -c 'exit 3'"; }
queue fat { handler exec; workers 1; command "$py 60 300"; wait_ready on;
            memory_limit 50m; max_restarts 1 60s; }
queue slow { handler exec; workers 1; command "$py 600"; wait_ready on;
             init_timeout 1h; }
queue pyquick { handler exec; workers 1; command "$py $load";
                max_attempts 1; }
queue nodequick { handler exec; workers 1; command "$node $load";
                  max_attempts 1; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');
my $log = "$dir/sidecar.log";

# ---- the SDKs, loading 2 s with jobs waiting; without wait_ready, the
# job reaches the process during its load, and what it prints before run()
# is logged, not taken for the job's answer (before: the SDKs moved stdout
# only in run(), and the job failed, 502, with "loaded in ..." as answer)
my @quick = map { [ $_, send_post("/jobs/$_", '{}') ] } qw(pyquick nodequick);
my @socks = map { [ $_, time, send_post("/jobs/$_", '{}') ] } qw(py node);
for (@quick) {
    my ($q, $sock) = @$_;
    my $r = read_answer($sock, scaled(20));
    is($r->{status}, 200, "$q: a job sent while it loads, printing: 200")
        or diag($r->{content});
}
for (@socks) {
    my ($q, $sent, $sock) = @$_;
    my $r = read_answer($sock, scaled(20));
    is($r->{status}, 200, "$q: the job queued during the load is answered")
        or diag($r->{content});
    my $ready = $r->{json} && $r->{json}{ready_at} // 0;
    cmp_ok($ready, '>', $sent, "$q: the job was sent before the process "
        . "was ready");
    like(slurp($log), qr/worker $q:0: handler pid \d+ is ready/,
        "$q: the log says when the process was ready");
}
like(slurp($log), qr/worker py:0: handler pid \d+: loading, step 2999 of 3000/,
    'the stderr written during the load is logged (210 KB: the pipe was read)');
unlike(slurp($log), qr/worker (py|node):0: .*(job_timeout|ran past)/,
    'no job killed for its timeout');

# ---- a process that never says it
ok(wait_until(sub { slurp($log) =~ /pool never failed/ }, scaled(15),
    'the never pool fails'), 'never ready: its pool fails')
    or diag(slurp($log));
my $kills = () = slurp($log) =~ /worker never:0: its process did not write \{"ready":true\} within the 500 ms init_timeout, killing pid \d+/g;
is($kills, 2, 'never ready: killed at init_timeout, each start');

# ---- a process that says something else first, or exits first
for my $case ([ 'chatty', qr/handler process \d+ wrote "hello" before it was ready \(wait_ready: \{"ready":true\} first\); killed/ ],
              [ 'quits', qr/handler process \d+ exited with code 3 \((exited|closed its stdout) before it was ready\)/ ]) {
    my ($q, $want) = @$case;
    ok(wait_until(sub { slurp($log) =~ /pool $q failed/ }, scaled(15),
        "the $q pool fails"), "$q: its pool fails") or diag(slurp($log));
    like(slurp($log), qr/worker $q:0: $want/, "$q: the log says what it did");
    my ($crash) = grep { $_->{report}{queue} eq $q } @{ events('crash') };
    like($crash && $crash->{report}{handler_error} // '', $want,
        "$q: a crash of its slot, with what the process did");
}

is(post_json('/jobs/echo', '{"still":1}')->{status}, 200,
    'the other queues are served all along');

# ---- memory_limit holds during the load
ok(wait_until(sub { slurp($log) =~ /pool fat failed/ }, scaled(15),
    'the fat pool fails'), 'a load over memory_limit: its pool fails')
    or diag(slurp($log));
like(slurp($log), qr/worker fat:0: handler process RSS \d+ MB over twice memory_limit 50 MB: killed/,
    'a load over memory_limit: killed during the load');
like(slurp($log), qr/worker fat:0: pid \d+ [^(]+ \(memory_limit\) while starting, holding no job/,
    'a load over memory_limit: reason memory_limit');

# ---- a drain does not wait for a load: the worker looks at it first
my ($slow) = @{ worker_pids()->{slow} || [] };
ok($slow && kill(0, $slow), 'the slow worker is still loading');
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl drain -t ${\ scaled(10)} ${\ node_name()} 2>&1`;
is($? >> 8, 0, 'offloadctl drain: done while a worker loads') or diag($out);
$out = `$ctl resume -t ${\ scaled(10)} ${\ node_name()} 2>&1`;
is($? >> 8, 0, 'offloadctl resume') or diag($out);

# ---- a stop does not wait for a load (shutdown_timeout is 30 s)
my $t = time;
stop_sidecar();
cmp_ok(time - $t, '<', scaled(5), 'the sidecar stops at once, the load '
    . 'cut short');
like(slurp($log), qr/worker slow:0: stopped before its handler was ready/,
    'the loading worker says it stopped');
unlike(slurp($log), qr/worker slow:0: .*(SIGKILL|died)/,
    'and was not killed as a straggler');

finish();
