#!/usr/bin/perl
# handler exec: a process that exits under a job while something it
# started still holds its stdout (a `sleep &` of a shell, a fork of Python's
# multiprocessing) gives the worker no end of file.  Its exit is the job's
# failure all the same, at once: before, the job waited out the queue's
# timeout (504 job_timeout) or, with `timeout off`, its deadline.  A
# process that answers and then exits that way still has its answer taken.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $script = "$dir/orphan.pl";
spew($script, <<'PERL');
#!/usr/bin/perl
# {"do": "quit" | "answer", "tag": T}: starts a sleep 30 that inherits its
# stdout, writes that pid to T.pid, then exits 3, or answers and exits 0.
use strict;
use warnings;
use JSON::PP;
use File::Basename;
$| = 1;
my $line = <STDIN> // exit 0;
my $req = decode_json($line);
my $p = $req->{payload};
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDIN, '<', '/dev/null';
    exec 'sleep', '30';
    exit 127;
}
open my $fh, '>', dirname($0) . "/$p->{tag}.pid" or die;
print $fh $pid;
close $fh;
exit 3 if $p->{do} eq 'quit';
print encode_json({ id => $req->{id}, result => { answered => 1 } }), "\n";
exit 0;
PERL
chmod 0755, $script;

start_redis();
start_sidecar(conf => <<"CONF");
queue quit { handler exec; workers 1; command "$script"; timeout 20s;
             max_attempts 1; }
queue quitoff { handler exec; workers 1; command "$script"; timeout off;
                max_attempts 1; }
queue answer { handler exec; workers 1; command "$script"; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 30s;'), 'stack ready');
ok(wait_until(sub { !grep { !redis_cmd('EXISTS', "offload:{$_}:jobs") }
        qw(quit quitoff answer) }, scaled(10), 'the streams'),
    'every queue\'s stream is made');

my @started;

sub running {
    my $stat = slurp("/proc/$_[0]/stat");
    return $stat =~ /^\S+ \(.*\) [^Z]/;
}

# Runs one job on $queue; the answer, and the sleep its process started.
sub job {
    my ($queue, $do, $headers) = @_;
    my $r = http('POST', "/jobs/$queue",
        json_encode({ do => $do, tag => $queue }), $headers, scaled(10));
    my $pid = slurp("$dir/$queue.pid");
    push @started, $pid if $pid;
    return ($r, $pid);
}

# ---- (a) exits under a job, timeout 20s: 502 at once, not 504 at 20 s
my ($r, $pid) = job('quit', 'quit');
is($r->{status}, 502, 'timeout 20s: 502') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'worker_crashed',
    'timeout 20s: worker_crashed');
cmp_ok($r->{ms}, '<', scaled(5) * 1000, 'timeout 20s: answered in < 5 s');
is($r->{json} && $r->{json}{error}{reason}, 'exit', 'reason exit');
like($r->{json} && $r->{json}{error}{handler_error},
    qr/exited with code 3 \(before answering/,
    'handler_error: it exited with code 3 before answering');
ok($pid && wait_until(sub { !running($pid) }, scaled(5), "sleep $pid gone"),
    'the sleep holding its stdout is gone with the worker');

# ---- (b) the same with timeout off: the job's deadline (30 s) is not
# waited for
($r, $pid) = job('quitoff', 'quit', { 'X-Offload-Timeout' => '30' });
is($r->{status}, 502, 'timeout off: 502') or diag($r->{content});
cmp_ok($r->{ms}, '<', scaled(5) * 1000, 'timeout off: answered in < 5 s');

# ---- (c) answers, then exits: the answer is taken
($r, $pid) = job('answer', 'answer');
is($r->{status}, 200, 'answered, then exited: 200') or diag($r->{content});
is($r->{json} && $r->{json}{answered}, 1, 'with its answer');
$r = post_json('/jobs/answer', { do => 'answer', tag => 'answer2' },
    scaled(10));
is($r->{status}, 200, 'the next job runs on a fresh process')
    or diag($r->{content});
push @started, slurp("$dir/answer2.pid") || ();

END { kill 'KILL', grep { $_ && running($_) } @started }

finish();
