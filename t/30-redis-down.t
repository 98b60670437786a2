#!/usr/bin/perl
# Redis goes away: the module answers 503 at once instead of waiting for the
# job timeout; Redis comes back on the same port: jobs work again with no
# restart of nginx or the sidecar.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

start_redis(args => [ '--enable-debug-command', 'yes' ]);
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 10s;
    location = /short/sleep { offload_pass sleep; offload_timeout 3s; }'),
    'stack ready');
my @nginx_workers = nginx_worker_pids();
my $sidecar = sidecar_pid();

# ---- Redis hangs (up, but answers nothing for 6 s): the module's command
# watchdog drops the connection and answers 503 long before the 10 s
# offload_timeout: outcome_unknown, as the XADD went out whole and Redis
# runs it once it wakes (t/31-outcome-unknown.t)
pipe(my $sent_r, my $sent_w) or die "pipe: $!";
my $hang = fork // die "fork: $!";
if ($hang == 0) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => redis_port(), Proto => 'tcp') or POSIX::_exit(1);
    print $s "*3\r\n\$5\r\nDEBUG\r\n\$5\r\nSLEEP\r\n\$1\r\n6\r\n";
    syswrite($sent_w, "sent\n");
    sysread($s, my $reply, 100);
    POSIX::_exit(0);
}
close $sent_w;
is(scalar readline($sent_r), "sent\n", 'DEBUG SLEEP 6 sent: redis hangs');
my $r = post_json('/jobs/echo', { hang => 1 });
is($r->{status}, 503, 'redis hung: 503') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'outcome_unknown',
    'redis hung: outcome_unknown');
ok($r->{ms} > 1000 && $r->{ms} < 9000, sprintf('after the watchdog, before '
    . 'the timeout (%d ms)', $r->{ms}));
diag(sprintf 'redis hung: 503 after %d ms', $r->{ms});
waitpid($hang, 0);
ok(wait_until(sub { batch_ok(4) == 4 }, 20, 'jobs after the hang'),
    'jobs work again after the hang');

# a job parked while Redis goes down is answered, not forgotten.  An nginx
# worker may still be in its reconnect backoff after the hang and refuse the
# job with 503: then post it again.
my ($parked, $running);
for my $try (1 .. 10) {
    $parked = send_post('/short/sleep', '{"ms":1500}');
    $running = wait_until(sub { pending_jobs('sleep') == 1 }, 2,
        'sleep job picked up');
    last if $running;
    close $parked;
}
ok($running, 'a sleep job is running');

my $t_down = time;
stop_redis();

for my $i (1 .. 5) {
    my $r = post_json('/jobs/echo', { i => $i });
    is($r->{status}, 503, "redis down: job $i answered 503")
        or diag($r->{content});
    is($r->{json} && $r->{json}{error}{code}, 'redis_unavailable',
        "job $i: redis_unavailable");
    ok(defined $r->{headers}{'retry-after'}, "job $i: Retry-After");
    ok($r->{ms} < 1000, sprintf('job %d: answered in %.1f ms, not after the '
        . '10 s timeout', $i, $r->{ms}));
    diag(sprintf 'redis down: 503 in %.1f ms', $r->{ms});
}

# the parked job: Redis is down at its deadline, answered then (504) or
# earlier (503) -- not hung
$parked->blocking(1);
my $resp = '';
local $SIG{ALRM} = sub { die "parked request hung\n" };
alarm 10;
my $status = eval {
    1 while sysread($parked, $resp, 65536, length $resp);
    alarm 0;
    ($resp =~ m{^HTTP/1\.1 (\d+)})[0];
};
alarm 0;
ok(defined $status && ($status == 503 || $status == 504),
    'parked job answered 503/504 while redis is down')
    or diag($@ || $resp);
diag(sprintf 'parked job answered %s after %.2f s', $status // '-',
    time - $t_down);

# Redis clients whose last command was PUBLISH: the nginx workers' command
# connections.
sub nginx_command_conns {
    my $list = redis_cmd('CLIENT', 'LIST');
    # (or its last was the served-queues read, every second: EVALSHA_RO,
    # which only nginx sends)
    return scalar grep { /\bcmd=(?:publish|evalsha_ro|eval_ro)\b/ }
        split /\n/, $list // '';
}

# Posts $n echo jobs; returns how many came back 200 with their own body.
sub batch_ok {
    my ($n) = @_;
    my $ok = 0;
    for my $i (1 .. $n) {
        my $r = post_json('/jobs/echo', { again => $i });
        if ($r->{status} == 200 && $r->{json}{again} == $i) {
            $ok++;
        } else {
            note("job $i: $r->{status} $r->{content}");
        }
    }
    return $ok;
}

start_redis();
ok(wait_until(sub { post_json('/jobs/echo', { back => 1 })->{status} == 200 },
    30, 'a job succeeds after redis restarted'),
    'jobs work again after redis came back');
# each nginx worker reconnects on its own backoff: wait until both command
# connections are back (each PUBLISHes its liveness ping every second; the
# sidecar publishes only from inside its script) and a whole batch succeeds
my $t_back = time;
ok(wait_until(sub { nginx_command_conns() >= 2 && batch_ok(10) == 10 }, 30,
    'both nginx workers reconnected'), 'every nginx worker reconnected');
diag(sprintf 'all workers recovered %.2f s after redis came back',
    time - $t_back);
is(batch_ok(20), 20, '20 more jobs succeed');
is_deeply([ nginx_worker_pids() ], \@nginx_workers, 'same nginx workers');
is(sidecar_pid(), $sidecar, 'same sidecar');
ok(kill(0, $sidecar), 'sidecar still running');

# twice in a row, to catch a reconnect path that works only once
stop_redis();
is(post_json('/jobs/echo', {})->{status}, 503, 'down again: 503');
start_redis();
ok(wait_until(sub { post_json('/jobs/echo', {})->{status} == 200 }, 30,
    'jobs work after the second restart'), 'second recovery');

finish();
