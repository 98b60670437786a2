#!/usr/bin/perl
# Clients that go away while their jobs run: the module drops the parked
# requests (499), the late results find nothing, nginx's workers survive;
# the jobs not started yet never run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 2; }
CONF
ok(start_jobs_nginx(
    http => q{log_format status '$status $request_uri';},
    server => 'access_log @DIR@/access.log status;'), 'stack ready');
my @workers = nginx_worker_pids();

my $n = 6;
my @socks;
for my $i (1 .. $n) {
    push @socks, send_post('/jobs/sleep', qq({"ms":500,"i":$i}));
}
# a client that goes away in the middle of sending its body
my $half = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
print $half "POST /jobs/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    . "\r\n{\"a\":";

sleep 0.1;    # the stimulus: abort while the jobs are parked
close $_ for @socks, $half;

# the jobs running go on; those still queued are cancelled unrun
# (t/41-sync-cancel.t): each ends one way or the other
sub cancelled {
    my $sum = 0;
    $sum += $_->{jobs_cancelled} // 0
        for @{ node_doc()->{queues}{sleep}{workers} || [] };
    return $sum;
}
my $ran;
ok(wait_until(sub {
    my $keys = redis_cmd('KEYS', 'offload:{sleep}:result:*');
    $ran = ref $keys eq 'ARRAY' ? @$keys : 0;
    $ran + cancelled() == $n;
}, 15, "all $n sleep jobs ended"), 'the workers ran or dropped every job');
ok($ran >= 2 && $ran < $n, "the two running ran ($ran ran), the queued "
    . 'were dropped');
is(redis_cmd('XLEN', 'offload:{sleep}:jobs'), 0, 'stream drained (acked + '
    . 'deleted)');
my $access = tmpdir() . '/access.log';
ok(wait_until(sub {
    (() = slurp($access) =~ m{^499 /jobs/sleep$}mg) == $n;
}, 5, "$n requests logged 499"), 'each aborted parked request ended 499')
    or diag(slurp($access));

my @res = concurrent_posts(10, 10, sub { qq({"c":$_[0],"j":$_[1]}) });
is(scalar(grep { $_->{status} == 200 } @res), 100, '100 more jobs all 200');
is_deeply([ nginx_worker_pids() ], \@workers, 'nginx worker pids unchanged');

# the same again while results arrive at the moment of the close
for my $round (1 .. 3) {
    my @s;
    for my $i (1 .. 10) {
        push @s, send_post('/jobs/sleep', qq({"ms":$i}));
    }
    sleep 0.005 * $round;
    close $_ for @s;
}
@res = concurrent_posts(10, 10, sub { qq({"c":$_[0],"j":$_[1]}) });
is(scalar(grep { $_->{status} == 200 } @res), 100,
    'still 100 of 100 after racing aborts');
is_deeply([ nginx_worker_pids() ], \@workers, 'nginx worker pids unchanged');

finish();
