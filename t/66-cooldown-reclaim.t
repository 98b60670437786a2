#!/usr/bin/perl
# A failed pool's cooldown ends while the last dead worker's job is still
# being failed (Redis is slow to answer): the new worker must wait for that
# reclaim, as every restart does, so it never runs the job that is being
# dead-lettered under its feet.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use OffloadTest;

start_redis(args => [ '--enable-debug-command', 'yes' ]);
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue sleep {
    handler sleep; workers 1; max_attempts 1;
    max_restarts 1 60s; restart_cooldown 1s; restart_backoff 10ms 10ms;
}
CONF
ok(start_jobs_nginx(server => 'offload_timeout 60s;'), 'stack ready');

sub sleep_worker { (node_doc() || {})->{queues}{sleep}{workers}[0] || {} }
sub busy_pid {
    my $w;
    wait_until(sub { $w = sleep_worker(); ($w->{state} // '') eq 'busy' },
        scaled(10), 'sleep worker busy') or return 0;
    return $w->{pid};
}

# first death, of an idle worker: restarted (one restart counted; the
# crashes of one job count once, so the two deaths are not the job's)
my $pid = sleep_worker()->{pid};
ok($pid, 'the sleep worker is up');
kill 'KILL', $pid;
ok(wait_until(sub { my $w = sleep_worker();
    ($w->{pid} // $pid) != $pid && ($w->{state} // '') eq 'idle' },
    scaled(10), 'restarted'), 'it is restarted');

my $job = send_post('/jobs/sleep', '{"ms":5000}');
my $again = busy_pid();
ok($again, 'the job runs');

# second death, under the job, with Redis asleep for 2 s: the pool fails
# (cooldown 1 s), and the job's reclaim (its last attempt: a dead letter)
# waits for Redis past the cooldown
my $sleeper = fork // die "fork: $!";
if ($sleeper == 0) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => redis_port(), Proto => 'tcp') or POSIX::_exit(1);
    print $s "*3\r\n\$5\r\nDEBUG\r\n\$5\r\nSLEEP\r\n\$1\r\n2\r\n";
    sysread($s, my $reply, 100);
    POSIX::_exit(0);
}
select(undef, undef, undef, 0.1);       # let the DEBUG SLEEP reach Redis
kill 'KILL', $again;
waitpid($sleeper, 0);

my $a = read_answer($job, scaled(20));
is($a->{status}, 502, 'the job is answered 502 after its last attempt');

ok(wait_until(sub { sleep_worker()->{pid} && sleep_worker()->{pid} != $again
    && (sleep_worker()->{state} // '') eq 'idle' }, scaled(10),
    'restarted after cooldown'), 'the pool restarts after its cooldown');

my @log = split /\n/, slurp(tmpdir() . '/sidecar.log');
my ($dead) = grep { $log[$_] =~ /is dead-lettered/ } 0 .. $#log;
my ($cool) = grep { $log[$_] =~ /restarting after cooldown/ } 0 .. $#log;
my ($started) = grep { $_ > ($cool // $#log)
    && $log[$_] =~ /worker sleep:0: started/ } 0 .. $#log;
ok(defined $dead && defined $cool, 'the job was dead-lettered and the pool '
    . 'cooled down');
ok(defined $started && $started > $dead, 'the worker after the cooldown '
    . 'started only once the dead job was dealt with')
    or diag(join "\n", @log[($cool // 0) - 5 .. $#log]);
is(scalar(grep { /pid \d+ killed by SIGKILL/ } @log), 2, 'two deaths only: the '
    . 'dead job never ran a second time');
is(sleep_worker()->{jobs_ok} // 0, 0, 'no job completed by the new worker');

finish();
