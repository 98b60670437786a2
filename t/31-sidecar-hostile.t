#!/usr/bin/perl
# Replies of a shape hiredis 0.14 does not expect, sent to the sidecar by a
# broken, hostile or "Redis-compatible" server (or a proxy): hiredis
# assert()s on a reply nothing asked for, which killed the supervisor or a
# worker with SIGABRT.  The sidecar refuses such a reply before hiredis
# dispatches it (proto/offload_reply_guard.c, shared with the module, whose
# own test is t/31-redis-hostile.t): the connection is dropped with a
# "protocol error" in the log and made again after the backoff, no process
# dies, and jobs go on once the server behaves.
#
# The sidecar reaches Redis through a proxy that sends every connection a
# 1-element array, then a status reply: on the supervisor's idle command
# connection a reply nothing asked for (hiredis' assert); on a worker's
# connection waiting in XREADGROUP the read's answer, which cannot be one:
# the replies after it would each go to the wrong command (the entries of
# the next read to a ZCARD's callback, taken and never run), so the worker
# drops the connection too.
# nginx talks to Redis directly.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use BlackholeProxy;

my $SHORT = "*1\r\n\$4\r\npong\r\n";

sub sidecar_log {
    my $dir = OffloadTest::tmpdir();
    return slurp("$dir/sidecar.log") . slurp("$dir/sidecar.stderr");
}

# Injects $bytes through $proxy until the sidecar's log after $from
# matches every pattern of @want.
sub inject_until {
    my ($proxy, $bytes, $from, @want) = @_;
    return $proxy->inject_until($bytes,
        sub { substr(sidecar_log(), $from) }, scaled(10), @want);
}

# Over $secs seconds the supervisor and its workers keep their pids, and
# nothing in the sidecar's log or stderr tells of an assert.
sub sidecar_survives {
    my ($what, $secs, $sidecar, @workers) = @_;
    my $end = time + $secs;
    my $changed = '';
    while (time < $end && !$changed) {
        my @now = child_pids($sidecar);
        $changed = "workers @workers -> @now" if "@now" ne "@workers";
        $changed = 'the supervisor exited' unless alive('sidecar');
        select(undef, undef, undef, 0.1);
    }
    ok(!$changed, "$what: the supervisor ($sidecar) and its workers "
        . "(@workers) live on") or diag($changed);
    my @bad = grep { /Assertion|SIGABRT|signal 6|Aborted/ }
        split /\n/, sidecar_log();
    ok(!@bad, "$what: no assert in the sidecar's log or stderr")
        or diag(join "\n", @bad);
}

start_redis();
my $proxy = BlackholeProxy->start(redis_port());
my $sidecar = start_sidecar(redis => '127.0.0.1:' . $proxy->port,
    conf => "queue echo { handler echo; workers 2; }\n");
ok(start_jobs_nginx(workers => 1), 'nginx ready, jobs run');
my @workers = child_pids($sidecar);
is(scalar @workers, 2, "two workers (@workers)");

for my $shape (
    [ $SHORT, '1-element array' ],
    [ "+OK\r\n", 'status reply' ],
) {
    my ($bytes, $what) = @$shape;
    my $from = length sidecar_log();
    ok(inject_until($proxy, $bytes, $from,
        qr/registry \S+: redis protocol error: a reply nothing asked for: (?x:
        )dropping the connection/,
        qr/worker echo:0: redis protocol error: /,
        qr/worker echo:1: redis protocol error: /),
        "$what: the protocol errors are logged (supervisor and workers)")
        or diag(substr(sidecar_log(), $from));
    like(substr(sidecar_log(), $from),
        qr/lost redis connection: protocol error/,
        "$what: the connection is dropped for it");
    sidecar_survives($what, 3, $sidecar, @workers);

    # the injection stopped: the connections come back and jobs run
    my $r;
    ok(wait_until(sub {
        $r = post_json('/jobs/echo', { what => $what }, 5);
        $r->{status} == 200;
    }, scaled(15), "$what: a job"), "$what: jobs run again")
        or diag(($r->{status} // '') . ' ' . ($r->{content} // ''));
    ok(wait_until(sub { substr(sidecar_log(), $from)
        =~ /connected to redis/ }, scaled(10), 'reconnected'),
        "$what: the sidecar reconnected");
}

is(join(' ', child_pids($sidecar)), "@workers", 'the same workers at the '
    . 'end');
stop_nginx();
finish();
$proxy->stop;
