#!/usr/bin/perl
# A SIGTERM that reaches a worker right after its fork(), before it has its
# own signal watchers, is not lost: it is held until the worker's watchers
# are in place, then handled as the worker's SIGTERM (a failed pool and a
# reload's rolling restart stop workers with it).  The window is
# microseconds wide; strace widens it: each new worker's first system call,
# prctl(PR_SET_PDEATHSIG), is held 300 ms, and the test sends SIGTERM to
# the new process meanwhile.  Before, the parent's signal handler, still
# installed in the child, took it into the parent's loop, which the child
# then destroys: the worker ran on.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

plan skip_all => 'strace not installed' unless -x '/usr/bin/strace';

start_redis();
# a worker stopped by its own SIGTERM is a crash to the supervisor (it did
# not ask): restarted at once, never a failed pool
start_sidecar(conf => <<'CONF');
queue echo {
    handler echo; workers 1;
    max_restarts 1000 1m; restart_backoff 10ms 20ms;
}
CONF

my $sup = (node_doc() // {})->{pid};
ok($sup, 'sidecar running');
my $log = tmpdir() . '/sidecar.log';

# strace follows the supervisor's forks from now on
my $trace = tmpdir() . '/strace.out';
my $strace = fork // die "fork: $!";
if ($strace == 0) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', $trace;
    exec '/usr/bin/strace', '-f', '-qq', '-o', '/dev/null',
        '-e', 'trace=prctl', '-e', 'inject=prctl:delay_enter=300000',
        '-p', $sup
        or POSIX::_exit(127);
}
ok(wait_until(sub { slurp("/proc/$sup/status") =~ /^TracerPid:\s+$strace$/m },
    10, 'strace attached'), 'strace attached to the supervisor');
my %known = map { $_ => 1 } child_pids($sup);

sub new_worker {
    my ($timeout) = @_;
    my $pid;
    wait_until(sub {
        ($pid) = grep { !$known{$_} } child_pids($sup);
        $pid;
    }, $timeout, 'a new worker process');
    $known{$pid} = 1 if $pid;
    return $pid;
}

kill 'KILL', keys %known;      # its successor is the first round's

my $rounds = 5;
my $gone = 0;
for my $round (1 .. $rounds) {
    my $pid = new_worker(scaled(5)) or last;
    kill 'TERM', $pid;
    if (wait_until(sub { !kill 0, $pid }, scaled(3),
                   "worker $pid gone after an early SIGTERM"))
    {
        $gone++;
    } else {
        kill 'KILL', $pid;      # on to the next round
    }
}
is($gone, $rounds, "$gone of $rounds workers SIGTERMed right after their "
   . 'fork stopped');

kill 'INT', $strace;
waitpid($strace, 0);
my $stopped = () = slurp($log) =~ /worker echo:0: pid \d+ exited with code 0/g;
ok($stopped >= $gone, 'they stopped on their own (exit code 0), not killed');

finish();
