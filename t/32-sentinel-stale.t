#!/usr/bin/perl
# A stale sentinel: S1 names a replica R of the real master M, S2 names M
# (both fakes, t/lib/FakeSentinel.pm).  S2 is down while nginx starts, so
# every worker's first answer is S1's: R.  Once S2 is up, every worker
# must ask it and move every connection to M.  Two peers: one whose user
# may ask ROLE, which finds R a replica on connecting; one whose ACL user
# has no +role, whose first job's XADD gets READONLY.  Either way the next
# round asks the next sentinel.  Before, a READONLY dropped only the
# connection that got it, whose reconnect asked S1 again (its query
# connection stays up after a good answer): R again, 503 on every job
# until S1 changed its answer, and S2 never asked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use FakeSentinel;

my $dir = tmpdir();
# "ng" may do anything but ROLE, on M and on R
my @ng = ('--user', 'ng', 'on', '>pw', '~*', '&*', '+@all', '-role');
my $master = start_redis(args => \@ng);
my $replica = free_port();
spawn('replica', "$dir/replica.log", {}, 'redis-server', '--port', $replica,
    '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', $dir, '--daemonize', 'no', '--replicaof', '127.0.0.1', $master,
    '--repl-diskless-sync-delay', 0, @ng);
ok(wait_until(sub { (redis_cmd_at($replica, 'INFO', 'replication') // '')
    =~ /^master_link_status:up/m }, scaled(10), 'replica in sync'),
    "R ($replica) is a replica of M ($master)");

start_sidecar(conf => "queue echo { handler echo; workers 2; }\n");
ok(wait_until(sub { redis_cmd_at($replica, 'EXISTS',
    'offload:{echo}:jobs') }, scaled(10), 'stream on R'),
    'the queue\'s stream reached R');

my $s1 = FakeSentinel->start(master_port => $replica, log => "$dir/s1.asked");
my $s2_port = free_port();
my $url = "sentinel://127.0.0.1:${\ $s1->port},127.0.0.1:$s2_port/mymaster";
start_server_nginx(redis => $url, server => <<"SERVER");
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/norole/([^/]+)\$ {
        offload_redis $url user=ng password=pw;
        offload_pass \$1;
    }
SERVER

# R's clients other than the test's own CLIENT LIST and its master's
# link (flags=M): nginx's
sub on_replica {
    my $list = redis_cmd_at($replica, 'CLIENT', 'LIST') // '';
    return scalar grep { !/\bcmd=client\b/ && !/\bflags=\w*M/ }
        split /\n/, $list;
}
# 2 workers, 2 peers
ok(wait_until(sub { $s1->asked >= 4 }, scaled(10), 'S1 asked'),
    'every worker asked S1, the only sentinel up, for each peer');
my $s2 = FakeSentinel->start(master_port => $master, port => $s2_port,
    log => "$dir/s2.asked");

# N jobs in a row answered 200, through both peers
sub batch {
    my ($n) = @_;
    for my $i (1 .. $n) {
        for my $path ('/jobs/echo', '/norole/echo') {
            my $r = post_json($path, { i => $i }, 5);
            return 0 unless $r->{status} == 200
                && ($r->{json}{i} // 0) == $i;
        }
    }
    return 1;
}

my $t0 = time;
ok(wait_until(sub { batch(10) && on_replica() == 0 }, scaled(10),
    'jobs on M'), 'jobs work, and no worker is left on R');
diag(sprintf 'every worker on M after %.2f s', time - $t0);
ok(batch(20), '20 more jobs through each peer, all 200');
cmp_ok($s2->asked, '>=', 4, 'S2 was asked (by each worker, for each peer)');
my $log = slurp(nginx_error_log());
like($log, qr/127\.0\.0\.1:$replica, named by the sentinels, is a slave/,
    'ROLE found the replica');
like($log, qr/command connection: READONLY/,
    'the user without +role met READONLY');

$s1->stop;
$s2->stop;
finish();
