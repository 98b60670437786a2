#!/usr/bin/perl
# The sidecar's wait_replicas=all when the master refuses ROLE (an ACL user
# with +wait and without +role): the worker cannot count the replicas, so
# it says once per connection, at error level, which permission it needs,
# and waits for one replica meanwhile.  Not for 16 (its guess while the
# count is unknown), whose WAIT would hold the connection redis_timeout
# after every completion: one job per 2 s.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $master = start_redis(user => 'admin', password => 'admin-secret',
    args => [ '--user', 'default', 'off',
        '--user', 'admin', 'on', '>admin-secret', '~*', '&*', '+@all',
        '--user', 'norole', 'on', '>norole-secret', '~*', '&*', '+@all',
        '-role' ]);
my $replica = free_port();
mkdir tmpdir() . "/replica-$replica";
spawn("redis-$replica", tmpdir() . "/redis-$replica.log", {},
    'redis-server', '--port', $replica, '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', tmpdir() . "/replica-$replica",
    '--replicaof', '127.0.0.1', $master, '--masteruser', 'admin',
    '--masterauth', 'admin-secret');
ok(wait_until(sub {
    redis_cmd('INFO', 'replication') =~ /^slave0:.*state=online/m;
}, scaled(10), 'the replica online'), 'the master has a replica online');

my $timeout_ms = 2000;
start_sidecar(redis => "127.0.0.1:$master wait_replicas=all",
    conf => "redis_user norole;\npassword norole-secret;\n"
        . "redis_timeout ${timeout_ms}ms;\n"
        . "queue echo { handler echo; workers 1; }\n");

sub calls {
    my ($cmd, $field) = @_;
    $field //= 'calls';
    redis_cmd('INFO', 'commandstats')
        =~ /^cmdstat_$cmd:(?:.*,)?\Q$field\E=(\d+)/m ? $1 : 0;
}

my $ctl = build_path('offloadctl');
my $conf = tmpdir() . '/sidecar.conf';
my $n = 0;
sub job_ok {
    $n++;
    my $out = `$ctl -c $conf submit echo '{"n":$n}' --wait --timeout 10s 2>&1`;
    return $? == 0 && $out =~ /"n":\s*$n\b/;
}

# the worker makes the stream (offloadctl submit refuses a queue without
# one): a loaded machine may register the node before
ok(wait_until(sub { redis_cmd('EXISTS', 'offload:{echo}:jobs') }, scaled(10),
    'the stream'), 'the worker made its stream');
ok(job_ok(), 'a first job');
my $waits = calls('wait');
my $jobs = 5;
my $t0 = time;
my $ok = grep { job_ok() } 1 .. $jobs;
my $took = time - $t0;
is($ok, $jobs, "$jobs more jobs answered");
# WAIT 16 would hold each completion 2 s before the next read: 10 s
ok($took < $jobs * $timeout_ms / 1000 / 2,
    sprintf('... promptly: %.2f s, not a redis_timeout each', $took));
ok(calls('wait') >= $waits + $jobs, 'a WAIT after each job');
# one connection, so one ROLE refused: not one more per completion
is(calls('role', 'rejected_calls'), 1, 'ROLE asked once, not again after '
    . 'its refusal');

my $log = slurp(tmpdir() . '/sidecar.log');
my $said = () = $log =~ /ROLE refused .*\+role/g;
is($said, 1, 'the refusal logged once, naming the permission') or diag($log);
unlike($log, qr/WAIT: \d+ of \d+ replicas/,
    'every WAIT met (it asked for one replica)');

finish();
