#!/usr/bin/perl
# A Redis that accepts nginx's connections and refuses what they need: a
# wrong password (every link's AUTH), then an ACL user without the reply
# channels (the subscriber's SUBSCRIBE).  A link is usable only once its
# setup is answered: until then it goes on with its backoff (up to 2 s) and
# logs the refusal once at error, then at info.  Before, the TCP connect
# alone reset the backoff and the count of failures: each link was tried
# again every ~100 ms and every attempt was logged at error and warn
# (about 180 connections in 3 s from 2 workers, 3 links each; with only
# the subscriber refused, about 60).  Once Redis takes the password (the
# channels) again, jobs work within the backoff's cap.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OffloadTest;

my $WINDOW = 3;         # seconds the attempts are counted over
my $CAP = 2.5;          # the longest backoff (2 s + 25 %)
my $TIMEOUT = 10;       # offload_timeout

# nginx logs in as "ng", whose password is not the one nginx has
start_redis(args => [ '--user', 'ng', 'on', '>right', '~*', '&*', '+@all' ]);
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
start_server_nginx(redis => '@REDIS@ user=ng password=wrong',
    server => "    offload_timeout ${TIMEOUT}s;\n"
        . "    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }\n");
my $log = nginx_error_log();

sub connections {
    my ($n) = (redis_cmd('INFO', 'stats') // '')
        =~ /^total_connections_received:(\d+)/m;
    return $n;
}

# Once the backoff grew past 800 ms (a second after the first refusal):
# the connections Redis took (the test's own INFO is one of them) and
# nginx's log lines at notice and above naming Redis, over $WINDOW s.  A
# link's tries then come 1.5 to 2.5 s apart: at most 3 in the window.
sub window {
    sleep 1;
    my $lines0 = () = slurp($log) =~ /offload: redis /g;
    my $conns0 = connections();
    sleep $WINDOW;
    my $conns = connections() - $conns0 - 1;
    my $lines = (() = slurp($log) =~ /offload: redis /g) - $lines0;
    return ($conns, $lines);
}

# ---- a wrong password ------------------------------------------------------

ok(wait_until(sub { slurp($log) =~ /command connection setup failed: WRONGPASS/ },
    scaled(10), 'the refusal logged'),
    'wrong password: the refusal is logged at error');
my ($conns, $lines) = window();
diag("wrong password: $conns connections, $lines log lines in $WINDOW s");
ok($conns > 0, "nginx still tries ($conns connections in $WINDOW s)");
# 2 workers x 3 links
cmp_ok($conns, '<=', 18, 'at the backoff\'s pace, not every 100 ms');
cmp_ok($lines, '<=', 6, 'retries logged at info (not in this notice log)');
is(http('POST', '/jobs/echo', '{}')->{status}, 503, 'jobs meanwhile: 503');

my $t0 = time;
is(redis_cmd('ACL', 'SETUSER', 'ng', '>wrong'), 'OK',
    'Redis takes nginx\'s password now');
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs work again on both workers');
my $took = time - $t0;
diag(sprintf 'password fixed: jobs on both workers after %.2f s', $took);
cmp_ok($took, '<', scaled($CAP + 1.5), 'within the backoff\'s cap');

# ---- the subscriber's channels refused -----------------------------------

# (Redis 7 drops the subscribers whose channels their user lost)
is(redis_cmd('ACL', 'SETUSER', 'ng', 'resetchannels'), 'OK',
    'nginx\'s user loses its channels');
ok(wait_until(sub { slurp($log) =~ /subscriber connection \w+: NOPERM/ },
    scaled(10), 'NOPERM logged'), 'the refused SUBSCRIBE is logged');
($conns, $lines) = window();
diag("channels refused: $conns connections, $lines log lines in $WINDOW s");
ok($conns > 0, "the subscribers still try ($conns connections)");
cmp_ok($conns, '<=', 6, 'at the backoff\'s pace');
cmp_ok($lines, '<=', 4, 'retries logged at info');

# Its result not heard on the channel, a sync job's is looked for in its
# key every second (before: only at offload_timeout).
$t0 = time;
my $r = http('POST', '/jobs/echo', '{"heard":"no"}');
$took = time - $t0;
diag(sprintf 'channels refused: a sync echo job answered in %.2f s', $took);
is($r->{status}, 200, 'a sync job meanwhile: 200');
like($r->{content}, qr/"heard":"no"/, 'with its result');
cmp_ok($took, '<', scaled(4), 'looked for within seconds, not at its '
    . "${TIMEOUT} s deadline");

$t0 = time;
is(redis_cmd('ACL', 'SETUSER', 'ng', '&*'), 'OK', 'the channels are back');
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs work again on both workers');
$took = time - $t0;
diag(sprintf 'channels back: jobs on both workers after %.2f s', $took);
cmp_ok($took, '<', scaled($CAP + 1.5), 'within the backoff\'s cap');

finish();
