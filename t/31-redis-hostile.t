#!/usr/bin/perl
# Replies of a shape hiredis 0.14 does not expect, from a broken, hostile or
# "Redis-compatible" server: hiredis assert()s on them (a short array on a
# subscribed connection, a reply nothing asked for), which killed the nginx
# worker with SIGABRT, again after every respawn.  The module refuses such
# a reply before hiredis dispatches it: the connection is dropped with a
# "protocol error" in the log and made again after the backoff, no worker
# dies, and jobs go on.
#
# 1. A fake sentinel (t/lib/FakeSentinel.pm) names the real master and
#    answers the PING on the +switch-master watch link with a 1-element
#    array.
# 2. nginx reaches Redis through a proxy that sends every connection a
#    1-element array nothing asked for: on the subscriber a short pub/sub
#    reply, on the idle command connection an unsolicited reply; then the
#    subscriber's other shapes: a kind or channel not a bulk string, an
#    unsubscribe without its count or with a count not an integer, a nil;
#    and an array header of more elements than any reply holds.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use BlackholeProxy;
use FakeSentinel;

my $SHORT = "*1\r\n\$4\r\npong\r\n";

# Over $secs seconds: the same nginx workers, none killed by a signal, and
# a job answered 200 at the end.
sub workers_survive {
    my ($what, $secs, $from) = @_;
    my @before = nginx_worker_pids();
    my $end = time + $secs;
    my $changed;
    while (time < $end) {
        my @now = nginx_worker_pids();
        $changed = 1 if "@now" ne "@before";
        select(undef, undef, undef, 0.1);
    }
    ok(!$changed, "$what: the nginx workers live on (@before)");
    my $log = substr(slurp(nginx_error_log()), $from);
    unlike($log, qr/exited on signal/, "$what: no worker killed by a signal")
        or diag(join "\n", grep { /signal|Assertion/ } split /\n/, $log);
    my $r;
    ok(wait_until(sub {
        $r = post_json('/jobs/echo', { what => $what }, 5);
        $r->{status} == 200;
    }, scaled(10), "$what: a job"), "$what: jobs are still answered")
        or diag($r->{status} . ' ' . $r->{content});
}

# Injects $bytes through $proxy until the error log after $from matches
# every pattern: again every half second, for PUBSUB CHANNELS may still
# list a subscription of a connection dropped before, and the new one may
# not be there yet.
sub inject_until {
    my ($proxy, $bytes, $from, @want) = @_;
    return $proxy->inject_until($bytes,
        sub { substr(slurp(nginx_error_log()), $from) }, scaled(10), @want);
}

# Both nginx workers subscribed to their reply channels.
sub subscribed_again {
    return wait_until(sub {
        my $ch = redis_cmd('PUBSUB', 'CHANNELS', 'offload:reply:*');
        ref $ch eq 'ARRAY' && @$ch >= 2;
    }, scaled(10), 'subscribed again');
}

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");

# ---- 1. a sentinel's short pong on the watch link
my $sentinel = FakeSentinel->start(master_port => redis_port(),
    log => tmpdir() . '/sentinel.asked', subscribed_ping => $SHORT);
ok(start_jobs_nginx(
    redis => 'sentinel://127.0.0.1:' . $sentinel->port . '/hostile',
    workers => 2),
    'nginx on a fake sentinel ready');
my $from = length slurp(nginx_error_log());
my $refused = qr{sentinel\ watch\ connection:\ protocol\ error:
    \ a\ pub/sub\ reply\ of\ fewer\ than\ 2\ elements}x;
ok(wait_until(sub { substr(slurp(nginx_error_log()), $from) =~ $refused },
    scaled(10), 'protocol error logged'),
    'the short pong is logged as a protocol error of the watch connection');
workers_survive('short pong from the sentinel', 3, $from);
like(substr(slurp(nginx_error_log()), $from),
    qr/sentinel watch connection lost: protocol error/,
    'the watch connection is dropped for it');
stop_nginx();
$sentinel->stop;

# ---- 2. a Redis sending replies nothing asked for, on every connection
my $proxy = BlackholeProxy->start(redis_port());
ok(start_jobs_nginx(redis => '127.0.0.1:' . $proxy->port, workers => 2),
    'nginx through the proxy ready');
$from = length slurp(nginx_error_log());
ok(inject_until($proxy, $SHORT, $from,
    qr/subscriber connection: protocol error: a pub\/sub reply of fewer/,
    qr/command connection: protocol error: a reply nothing asked/),
    'both kinds of protocol error are logged (subscriber and command '
    . 'connections)') or diag(substr(slurp(nginx_error_log()), $from));
workers_survive('replies nothing asked for', 3, $from);
ok(subscribed_again(), 'both workers subscribed again');

# the other shapes hiredis asserts on, on the subscriber (each names a
# channel it is subscribed to: hiredis asserts on an unsubscribe's count
# only then)
my $done = "\$17\r\noffload:jobs:done\r\n";
for my $shape (
    [ "*2\r\n:1\r\n$done", 'whose kind is not a bulk string' ],
    [ "*3\r\n\$7\r\nmessage\r\n:2\r\n\$1\r\nx\r\n",
      'whose channel is not a bulk string' ],
    [ "*2\r\n\$11\r\nunsubscribe\r\n$done",
      'an unsubscribe reply without its count' ],
    [ "*3\r\n\$11\r\nUNSUBSCRIBE\r\n$done\$1\r\n0\r\n",
      'an unsubscribe reply whose count is not an integer' ],
    [ "*-1\r\n", 'a reply nothing asked for on a subscribed connection' ],
) {
    my ($bytes, $why) = @$shape;
    $from = length slurp(nginx_error_log());
    ok(inject_until($proxy, $bytes, $from,
        qr/subscriber connection: protocol error: .*\Q$why\E/),
        "subscriber: $why: logged");
    ok(subscribed_again(), "subscriber: $why: both workers subscribed "
        . 'again');
    unlike(substr(slurp(nginx_error_log()), $from), qr/exited on signal/,
        "subscriber: $why: no worker killed");
}
workers_survive('the other shapes', 1, $from);

# an array header of 444,444,444 elements: hiredis would allocate their
# pointers (3.5 GB) before any came (found by a fuzzer)
$from = length slurp(nginx_error_log());
ok(inject_until($proxy, "*444444444\r\n", $from,
    qr/protocol error: an array of more than 1048576 elements/),
    'a huge array header: refused, logged');
workers_survive('a huge array header', 1, $from);
stop_nginx();
$proxy->stop;

finish();
