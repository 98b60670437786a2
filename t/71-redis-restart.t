#!/usr/bin/perl
# Redis restarts under load (AOF on, as conf/redis.conf ships it): nginx and
# the sidecar reconnect by themselves, and every job Redis accepted reaches
# exactly one terminal state: one answer to its client, one result in
# Redis, nothing left in the stream or pending.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use OffloadTest;

my @aof = ('--appendonly', 'yes', '--appendfsync', 'everysec');
start_redis(args => \@aof);
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 4; }
CONF
ok(start_jobs_nginx(server => 'offload_timeout 20s;',
    ready => [ '/jobs/sleep', '{"ms":0}' ]), 'stack ready');
my @nginx = (nginx_pid(), nginx_worker_pids());
my $out = tmpdir() . '/load.json';

my $loader = fork // die "fork: $!";
if ($loader == 0) {
    my @res = concurrent_posts(8, 40, sub { json_encode({ ms => 20,
        n => "$_[0].$_[1]" }) }, path => '/jobs/sleep',
        timeout => scaled(90));
    spew($out, json_encode([ map { { status => $_->{status},
        id => $_->{headers}{'x-offload-job-id'},
        code => eval { json_decode($_->{content})->{error}{code} } } }
        @res ]));
    POSIX::_exit(0);
}

sub run_id { (redis_cmd('INFO', 'server') =~ /run_id:(\w+)/)[0] }
my $run_id = run_id();
ok(wait_until(sub { pending_jobs('sleep') > 0 }, 10, 'load running'),
    'load is running');
restart_redis(args => \@aof);
isnt(run_id(), $run_id, 'redis restarted under load');
ok(wait_until(sub { !kill 0, $loader or waitpid($loader, POSIX::WNOHANG())
    == $loader }, scaled(120), 'load done'), 'the load finished');

my $res = json_decode(slurp($out)) || [];
is(scalar @$res, 320, 'every request got an answer');
my @ok = grep { $_->{status} == 200 } @$res;
my @unavailable = grep { $_->{status} == 503 } @$res;
my @other = grep { $_->{status} != 200 && $_->{status} != 503 } @$res;
diag(sprintf '%d answered 200, %d got 503 while redis was away',
    scalar @ok, scalar @unavailable);
ok(@ok > 0, 'jobs succeeded');
is(scalar @other, 0, 'no other answer (no timeout, no lost job)')
    or diag(explain \@other);
ok(!(grep { ($_->{code} // '') !~ /^(redis_unavailable|outcome_unknown)$/ }
        @unavailable),
    'every 503 is redis_unavailable (the job was refused, not lost) or '
    . 'outcome_unknown (its XADD went out as Redis went)');
my %ids = map { $_->{id} => 1 } @ok;
is(scalar keys %ids, scalar @ok, 'each answer names a different job');
my $missing = grep { !redis_cmd('EXISTS', "offload:{sleep}:result:$_") }
    keys %ids;
is($missing, 0, 'every answered job has its one result in redis');
is(redis_cmd('XLEN', 'offload:{sleep}:jobs'), 0, 'no job left in the stream');
is(pending_jobs('sleep'), 0, 'none pending');
is_deeply([ nginx_pid(), nginx_worker_pids() ], \@nginx,
    'nginx never restarted a worker');

finish();
