#!/usr/bin/perl
# Redis goes silent without closing anything, as production makes it happen:
# a path that stops forwarding on the open connections while new ones go
# through (a dead host, a failover behind a virtual IP, a NAT timeout), and
# a frozen redis-server (SIGSTOP).  Every connection of nginx and of the
# sidecar has a deadline: jobs flow again within 5 s of a healthy path, and
# nothing is restarted.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use BlackholeProxy;
use OffloadTest;

start_redis();
my $proxy = BlackholeProxy->start(redis_port());
END { kill 'KILL', $proxy->pid if $proxy }
my $via = '127.0.0.1:' . $proxy->port;
start_sidecar(redis => $via, conf => <<'CONF');
queue echo { handler echo; workers 2; }
CONF
ok(start_jobs_nginx(redis => $via, server => 'offload_timeout 3s;'),
    'stack ready, through the proxy');

my $sidecar = sidecar_pid();
my @workers = @{ worker_pids()->{echo} };
my @nginx_workers = nginx_worker_pids();

my $n = 0;
sub echo_ok {
    my $r = post_json('/jobs/echo', { n => ++$n }, scaled(15));
    return 1 if $r->{status} == 200 && $r->{json}{n} == $n;
    return $r->{status} . (($r->{json} && $r->{json}{error})
        ? ":$r->{json}{error}{code}" : '');
}

# Posts one job at a time until one is answered; returns the seconds from
# $t0 to that answer (undef if none within $limit s) and the other answers.
sub until_answered {
    my ($t0, $limit) = @_;
    my @other;
    while (time - $t0 < $limit) {
        my $got = echo_ok();
        return (time - $t0, @other) if $got eq '1';
        push @other, $got;
    }
    return (undef, @other);
}

# Once one job went through, the rest may still be on its way back: the
# other nginx worker's links (their backoff, 2.5 s at most), and after a
# freeze longer than the registry's TTL the node's document, gone meanwhile
# until the sidecar's reconnect (its backoff) and next heartbeat (nginx
# does not take that for no_workers for 10 s after its Redis was in
# trouble: the jobs wait for the node).  Within 10 s more, 20 jobs in a
# row are answered.  Returns the answers.
sub twenty {
    my ($run, @got) = (0);
    wait_until(sub {
        my $got = echo_ok();
        push @got, $got;
        $run = $got eq '1' ? $run + 1 : 0;
        $run >= 20;
    }, scaled(10), '20 in a row');
    is($run, 20, 'then 20 jobs in a row') or diag("answers: @got");
    return @got;
}

is(echo_ok(), 1, 'a job through the proxy');

# offloadctl follows the events through the proxy: its connection has a
# deadline too
my $ctl_log = tmpdir() . '/offloadctl.log';
redis_cmd('XADD', 'offload:{ctl}:events', '*', type => 'test', node => 'test',
    queue => 'echo');
my $ctl = fork // die "fork: $!";
if ($ctl == 0) {
    open STDOUT, '>', $ctl_log;
    open STDERR, '>&', \*STDOUT;
    { exec build_path('offloadctl'), '-r', $via, 'events', '-f' }
    POSIX::_exit(127);
}
ok(wait_until(sub { -s $ctl_log }, scaled(5), 'offloadctl follows'),
    'offloadctl events -f runs through the proxy');

# ---- every open connection goes silent; new ones get through
$proxy->blackhole;
my $t0 = time;
my ($took, @other) = until_answered($t0, 30);
ok(defined $took && $took <= scaled(5), 'jobs flow again within 5 s of the '
    . 'blackhole (new connections are healthy)')
    or diag("answers meanwhile: @other");
diag(sprintf 'blackhole: first job answered %.2f s later (%s before it)',
    $took // -1, join(' ', @other) || 'no other answer');
twenty();
like(slurp(tmpdir() . '/sidecar.log'), qr/redis did not answer in \d+ ms/,
    'the sidecar says why it dropped its connections');
ok(wait_until(sub { waitpid($ctl, POSIX::WNOHANG()) == $ctl }, scaled(5),
    'offloadctl exits'), 'offloadctl gives up instead of hanging')
    or kill 'KILL', $ctl;
is($? >> 8, 1, 'with exit status 1');
like(slurp($ctl_log), qr/offloadctl: redis: no answer within/,
    'and says why');

# ---- the redis-server itself freezes: nginx answers 503 meanwhile
kill 'STOP', redis_pid();
my $stopped = time;
my %during;
while (time - $stopped < 8) {
    my $r = post_json('/jobs/echo', { frozen => 1 }, scaled(15));
    $during{ $r->{status} . ' '
        . (($r->{json} && $r->{json}{error}{code}) // '') }++;
}
kill 'CONT', redis_pid();
my $cont = time;
# outcome_unknown: an XADD that went out whole to the frozen Redis, which
# runs it on SIGCONT (t/31-outcome-unknown.t)
is_deeply([ grep { !/^503 (redis_unavailable|outcome_unknown)$/ }
        keys %during ], [],
    'while redis is frozen every job is refused with 503 redis_unavailable '
    . 'or outcome_unknown')
    or diag(explain \%during);
($took, @other) = until_answered($cont, 30);
ok(defined $took && $took <= scaled(5),
    'jobs flow again within 5 s of SIGCONT');
diag(sprintf 'SIGSTOP for 8 s: first job answered %.2f s after SIGCONT '
    . '(%s before it)', $took // -1, join(' ', @other) || 'no other answer');
my @after = twenty();
# the node's document expired while Redis was frozen: its jobs wait for
# its next heartbeat, not refused for a fault of the workers (before: 503
# no_workers for up to 2.6 s after SIGCONT)
is_deeply([ grep { /no_workers/ } @other, @after ], [],
    'after the freeze, no job is refused no_workers');

# ---- nothing was restarted to get there (the registry entry's TTL ran out
# while Redis was frozen: it is back at the next heartbeat)
ok(wait_until(sub { worker_pids() }, scaled(5), 'registry entry'),
    'the node is registered again');
is(sidecar_pid(), $sidecar, 'same sidecar');
is_deeply(worker_pids()->{echo}, \@workers, 'same workers');
is_deeply([ nginx_worker_pids() ], \@nginx_workers, 'same nginx workers');

finish();
