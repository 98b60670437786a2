#!/usr/bin/perl
# A long poll whose wait passes while its nginx worker exits after a
# reload (or a graceful stop) is answered with the job as Redis has it:
# the worker stays for the record read it sent then.  Commands on their
# way keep an exiting worker (their watchdog is no cancelable timer): it
# exits once they are answered, or dropped by the watchdog, and no later
# than the watchdog's time after it began to exit, with Redis frozen.  (Before: the
# worker, with no timer left, exited under the read, and the poll was
# answered 503 redis_unavailable, "the redis connection was lost", with
# Redis up and the job running.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 1; }
CONF
start_async_nginx(workers => 1,
    server => "    location = /nginx_status { stub_status; }\n");
ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1), 'stack ready');

sub old_gone {
    my @old = @_;
    return wait_until(sub { !grep { kill 0, $_ } @old }, scaled(10),
        'the old worker exits');
}

for my $signal (qw(HUP QUIT)) {
    my $id = running_sleep_job(5000);
    my @old = nginx_worker_pids();
    my $reads = evalsha_calls();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "GET /jobs/$id?wait=2 HTTP/1.1\r\nHost: t\r\n"
        . "Connection: close\r\n\r\n";
    ok(wait_until(sub { evalsha_calls() > $reads }, scaled(10),
        'the poll read its record'), "$signal: a long poll waits");
    kill $signal, nginx_pid();

    my $r = read_answer($s, scaled(15));
    is($r->{status}, 200, "$signal: the poll, its wait over in the exiting "
        . 'worker, is answered 200') or diag($r->{content});
    is($r->{json}{status}, 'running', "$signal: with its job running");
    ok(old_gone(@old), "$signal: the old worker exits then");
    last if $signal eq 'QUIT';
    ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1),
        "$signal: new workers serve jobs");

    # Redis frozen: the exiting worker's own pings and reads, sent by its
    # timers while it stays, keep its watchdog armed; it stays no longer
    # than the watchdog's 2 s after it began to exit all the same
    kill 'STOP', redis_pid();
    @old = nginx_worker_pids();
    kill 'HUP', nginx_pid();
    my $t0 = time;
    ok(old_gone(@old), 'HUP with Redis frozen: the old worker exits');
    diag(sprintf 'gone %.2f s after SIGHUP', time - $t0);
    kill 'CONT', redis_pid();
    ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1),
        'jobs again once Redis answers');
}

finish();
