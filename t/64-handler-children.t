#!/usr/bin/perl
# A handler's own children die with its worker: each worker leads a process
# group that its exec process and everything that process starts inherit,
# and the supervisor SIGKILLs the group whenever it kills the worker (a
# job's timeout) and again when it reaps it (any death, a graceful stop
# too).  The exec handler here starts a `sleep 300` for each job, as a
# handler's subprocess.Popen would, and then hangs, exits without
# answering, or answers.  PR_SET_PDEATHSIG does not reach that grandchild:
# before, it ran on, reparented to init, after its job had failed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $dir = tmpdir();
my $script = "$dir/children.pl";
spew($script, <<'PERL');
#!/usr/bin/perl
# {"do": "hang" | "exit" | "answer", "tag": T}: starts a sleep 300 whose pid
# goes to T.pid (next to this script), then does what it was told; it
# exits once the test has seen the sleep run (T.go).
use strict;
use warnings;
use JSON::PP;
use File::Basename;
$| = 1;
my $dir = dirname($0);
while (my $line = <STDIN>) {
    my $req = decode_json($line);
    my $p = $req->{payload};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'sleep', '300';
        exit 127;
    }
    open my $fh, '>', "$dir/$p->{tag}.tmp" or die;
    print $fh $pid;
    close $fh;
    rename "$dir/$p->{tag}.tmp", "$dir/$p->{tag}.pid";
    sleep 1000 if $p->{do} eq 'hang';
    if ($p->{do} eq 'exit') {
        select undef, undef, undef, 0.02 until -e "$dir/$p->{tag}.go";
        exit 3;
    }
    print encode_json({ id => $req->{id}, result => { pid => $pid } }), "\n";
}
PERL
chmod 0755, $script;

start_redis();
start_sidecar(conf => <<"CONF");
queue hang { handler exec; workers 1; command "$script"; timeout 2s;
             max_attempts 1; }
queue quit { handler exec; workers 1; command "$script"; max_attempts 1; }
queue ok   { handler exec; workers 1; command "$script"; }
queue idle { handler exec; workers 1; command "$script"; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');
# an exec worker makes its queue's stream once its command runs: slower
# than echo's, whose answer start_jobs_nginx waits for
ok(wait_until(sub { !grep { !redis_cmd('EXISTS', "offload:{$_}:jobs") }
        qw(hang quit ok idle) }, scaled(10), 'the streams'),
    'every queue\'s stream is made');

my $log = "$dir/sidecar.log";
my @started;

# alive and not a zombie (a killed orphan may stay one if init never reaps)
sub running {
    my $stat = slurp("/proc/$_[0]/stat");
    return $stat =~ /^\S+ \(.*\) [^Z]/;
}

# The pid of the sleep started by the job tagged $tag, once it runs.
sub grandchild {
    my ($tag) = @_;
    my $pid;
    my $runs = wait_until(sub { $pid = slurp("$dir/$tag.pid");
                                $pid && running($pid) },
        scaled(10), "the sleep of job $tag");
    push @started, $pid if $pid;
    return $runs ? $pid : 0;
}

# Whether $pid is gone within 1 s of $event; says how long it took.
sub gone_soon {
    my ($pid, $what, $event) = @_;
    my $t0 = time;
    my $gone = wait_until(sub { !running($pid) }, 1, "$what: sleep $pid gone");
    diag(sprintf '%s: sleep gone %.0f ms after %s', $what,
        (time - $t0) * 1000, $event) if $gone;
    return $gone;
}

# ---- (a) a job past its timeout: the worker's group is killed with it
my $s = send_post('/jobs/hang', '{"do":"hang","tag":"a"}');
my $ka = grandchild('a');
ok($ka, "timeout: the handler started a child ($ka)");
my $r = read_answer($s, scaled(15));
is($r->{json} && $r->{json}{error}{code}, 'job_timeout',
    'timeout: 504 job_timeout') or diag($r->{content});
ok(gone_soon($ka, 'timeout', 'the answer'),
    'timeout: the handler\'s child is gone');
unlike(slurp($log), qr/worker hang:0: pid \d+ left \d+ process/,
    'timeout: killed with its worker, not left behind');

# ---- (b) the handler process exits under a job: its child goes with it
$s = send_post('/jobs/quit', '{"do":"exit","tag":"b"}');
my $kb = grandchild('b');
ok($kb, "exit: the handler started a child ($kb)");
spew("$dir/b.go", '');
$r = read_answer($s, scaled(15));
is($r->{status}, 502, 'exit: 502') or diag($r->{content});
ok(gone_soon($kb, 'exit', 'the answer'),
    'exit: the handler\'s child is gone');
like(slurp($log), qr/worker quit:0: pid \d+ left 1 process behind: killed/,
    'exit: the supervisor says it killed what was left');

# ---- (e) a worker killed from outside (the OOM killer, an operator) whose
# handler started nothing: its exec process dies with it (PDEATHSIG) and
# is no leftover, nor is a zombie an init leaves unreaped.  Each worker is
# killed once it is up, idle, with its exec process (the node document's
# handler_pid).
my $killed = 0;
for my $n (1 .. 3) {
    my $w;
    wait_until(sub {
        my $doc = node_doc() || {};
        $w = ($doc->{queues}{idle}{workers} || [])->[0] || {};
        ($w->{state} // '') eq 'idle' && $w->{handler_pid}
            && running($w->{pid}) && running($w->{handler_pid});
    }, scaled(10), "idle worker $n and its exec process") or last;
    kill 'KILL', $w->{pid};
    $killed++;
    wait_until(sub { !running($w->{pid}) }, scaled(5), "idle worker $n gone");
}
is($killed, 3, 'outside kills: three idle workers killed');
ok(wait_until(sub { (worker_pids() || {})->{idle}[0] }, scaled(10),
    'idle worker back'), 'outside kills: the worker is back');
is(scalar(() = slurp($log) =~ /worker idle:0: pid \d+ left .*behind/g),
    0, 'outside kills: no process said left behind');

# ---- (c) a graceful stop: the children of answered jobs go with their worker
$r = post_json('/jobs/ok', { do => 'answer', tag => 'c' });
is($r->{status}, 200, 'stop: the job answered') or diag($r->{content});
my $kc = grandchild('c');
ok($kc, "stop: the handler's child runs after its job ($kc)");
stop_nginx();
is(stop_sidecar(), 0, 'stop: the sidecar exited 0 on SIGTERM');
ok(gone_soon($kc, 'stop', 'the sidecar\'s exit'),
    'stop: the handler\'s child is gone');

# (d), a C handler's child, would take a built-in handler that forks: none
# does, and the group is the same for every process a worker starts.

END { kill 'KILL', grep { running($_) } @started }

finish();
