#!/usr/bin/perl
# A Redis that takes connections and refuses every command on them: it
# requires a password now that offload was not given (rotated in Redis
# first, or a Redis restarted with requirepass: NOAUTH), then it has all
# the clients it takes (maxclients).  Every link, nginx's and the
# sidecar's, is refused at its setup: it tries again at the backoff's pace,
# the refusal is logged once, and nothing is sent on a refused link.
# (Before: a link was up once connected when it had no AUTH or SELECT to
# send.  Under NOAUTH each worker logged "XREADGROUP failed" every second,
# the supervisor its claims, each nginx worker "registry read for
# admission" every second, and nginx sent jobs to be refused.  Under
# maxclients, each try of the sidecar logged "connected to redis" and two
# lines more.)  Once Redis takes them again, jobs run within the backoff's
# cap.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use OffloadTest;

my $WINDOW = 3;         # seconds the log lines are counted over
my $CAP = 2.5;          # the longest backoff (2 s + 25 %)

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 2; }\n");
ok(start_jobs_nginx(), 'the stack is up: a job is answered');
my $slog = tmpdir() . '/sidecar.log';
my $nlog = nginx_error_log();

sub count { my ($file, $re) = @_; my $text = slurp($file); () = $text =~ /$re/g }
sub lines { my $text = slurp($_[0]); split /\n/, $text }

# The log lines of both written over $WINDOW s, a second after the
# refusals began (the backoff has grown past 800 ms by then).
sub window {
    sleep 1;
    my ($s0, $n0) = (scalar(() = lines($slog)), scalar(() = lines($nlog)));
    sleep $WINDOW;
    my @side = lines($slog);
    my @ngx = lines($nlog);
    return ([ @side[$s0 .. $#side] ], [ @ngx[$n0 .. $#ngx] ]);
}

# ---- a password Redis requires now -----------------------------------------

is(redis_cmd('CONFIG', 'SET', 'requirepass', 'rotated'), 'OK',
    'Redis requires a password offload was not given');
redis_password('rotated');
redis_cmd('CLIENT', 'KILL', 'TYPE', $_) for qw(normal pubsub);

ok(wait_until(sub {
    count($slog, qr/\] \d+ worker echo:\d: redis PING failed: NOAUTH/) == 2
        && count($slog, qr/\] \d+ registry [^:]+:\d+: redis PING failed: NOAUTH/)
        && count($nlog, qr/\[error\].*command connection setup failed: NOAUTH/)
            == 2;
}, scaled(10), 'the refusals logged'),
    'NOAUTH: each worker, the registry and each nginx worker say so')
    or diag(slurp($slog), slurp($nlog));

my ($side, $ngx) = window();
is_deeply([ grep { /NOAUTH|connected to redis/ } @$side ], [],
    "the sidecar's tries are not logged again")
    or diag(join "\n", @$side);
is_deeply([ grep { /NOAUTH|registry read/ } @$ngx ], [],
    "nginx's tries are logged at info (not in this notice log)")
    or diag(join "\n", @$ngx);

my $t0 = time;
my $r = post_json('/jobs/echo', '{"n":1}');
is($r->{status}, 503, 'a job meanwhile: 503');
is($r->{json}{error}{code}, 'redis_unavailable', 'redis_unavailable');
like($r->{json}{error}{message} // '', qr/not reachable/,
    'nothing was sent to be refused');
cmp_ok(time - $t0, '<', scaled(1), 'at once');

$t0 = time;
my $up = count($nlog, qr/command connection up/);
is(redis_cmd('CONFIG', 'SET', 'requirepass', ''), 'OK',
    'Redis takes offload without a password again');
redis_password(undef);
ok(wait_until(sub { count($nlog, qr/command connection up/) >= $up + 2 },
    scaled(10), 'links up'), "both nginx workers' command links are up");
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs run again on both nginx '
    . 'workers');
ok(wait_until(sub {
    count($slog, qr/\] \d+ worker echo:\d: connected to redis/) >= 4
}, scaled(10), 'workers back'), 'both sidecar workers are back');
my $took = time - $t0;
diag(sprintf 'password dropped: jobs again after %.2f s', $took);
cmp_ok($took, '<', scaled($CAP + 1.5), 'within the backoff\'s cap');
is(post_json('/jobs/echo', '{"n":2}')->{status}, 200, 'a job: 200');

# ---- Redis restarted asking for a password ------------------------------------

# nginx's links failed to connect meanwhile: the refusal that follows is
# logged at error all the same (before: at info, as one more failure)
stop_redis();
ok(wait_until(sub { count($nlog, qr/command connection failed: .*refused/) >= 2 },
    scaled(10), 'connects refused'), 'Redis down: nginx\'s links fail');
my $refusals = count($nlog, qr/\[error\].*command connection setup failed: NOAUTH/);
start_redis(password => 'restarted');
ok(wait_until(sub {
    count($nlog, qr/\[error\].*command connection setup failed: NOAUTH/)
        >= $refusals + 2
}, scaled(10), 'the refusals logged'),
    'back with a password: each nginx worker says NOAUTH at error')
    or diag(slurp($nlog));
is(redis_cmd('CONFIG', 'SET', 'requirepass', ''), 'OK', 'password dropped');
redis_password(undef);
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs run again');

# ---- a script running long (BUSY) while the links connect ---------------------

# PING answered BUSY is an answer: the links are up, their commands meet
# BUSY as on a link made before, and nothing is logged as refused (before
# the links counted it a refusal and backed off)
my ($side0, $ngx0) = (scalar(() = lines($slog)), scalar(() = lines($nlog)));
redis_cmd('CONFIG', 'SET', 'busy-reply-threshold', '100');
my @busy = redis_cmds([ 'CLIENT', 'KILL', 'TYPE', 'normal' ],
    [ 'EVAL', 'local function now() local t = redis.call("TIME") '
        . 'return t[1] * 1e6 + t[2] end local s = now() '
        . 'while now() - s < 2e6 do end return 1', '0' ]);
is($busy[1], 1, 'a script ran 2 s after every client was dropped');
my @side = (lines($slog))[$side0 .. scalar(() = lines($slog)) - 1];
my @ngx = (lines($nlog))[$ngx0 .. scalar(() = lines($nlog)) - 1];
ok((grep { /connected to redis/ } @side) >= 2,
    'the sidecar reconnected meanwhile') or diag(join "\n", @side);
is_deeply([ grep { /PING failed/ } @side ], [],
    'its PING answered BUSY is no refusal');
is_deeply([ grep { /setup failed/ } @ngx ], [],
    "nor is nginx's") or diag(join "\n", @ngx);
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs run after it');

# ---- maxclients --------------------------------------------------------------

# the test keeps one connection of its own, the only one Redis then takes
my $admin = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "connect: $!";
my $buf = '';
sub admin {
    my $req = '*' . @_ . "\r\n" . join '', map { '$' . length($_)
        . "\r\n$_\r\n" } @_;
    OffloadTest::syswrite_all($admin, $req);
    return OffloadTest::resp_read($admin, \$buf);
}
my $connected = count($slog, qr/connected to redis/);
is(admin('CONFIG', 'SET', 'maxclients', '1'), 'OK', 'maxclients 1');
admin('CLIENT', 'KILL', 'TYPE', $_) for qw(normal pubsub);
# (the supervisor's registry link too, at its own backoff's pace: before,
# the window below could begin before it had said so, and take its first
# word for a second one)
ok(wait_until(sub {
    count($slog, qr/\] \d+ worker echo:\d: redis PING failed: ERR max/) == 2
    && count($slog, qr/\] \d+ registry \S+ redis PING failed: ERR max/) == 1
}, scaled(10), 'the refusals logged'),
    'maxclients: each worker and the registry say so once')
    or diag(slurp($slog));
($side, $ngx) = window();
is(count($slog, qr/connected to redis/), $connected,
    'no try counts as connected');
is_deeply([ grep { /max number of clients/ } @$side ], [],
    "the sidecar's tries are not logged again")
    or diag(join "\n", @$side);
is(post_json('/jobs/echo', '{"n":3}')->{status}, 503, 'a job meanwhile: 503');

# each nginx worker's command link comes back at its own backoff's pace:
# both are up before a job is sent (a POST may go to either worker)
$up = count($nlog, qr/command connection up/);
is(admin('CONFIG', 'SET', 'maxclients', '10000'), 'OK', 'maxclients back');
close $admin;
ok(wait_until(sub { count($nlog, qr/command connection up/) >= $up + 2 },
    scaled(10), 'links up'), "both nginx workers' command links are up");
# and each worker's registry read has seen the sidecar's node again: its
# document expired while the sidecar could not write it, and a worker that
# read the registry then answers 503 no_workers until its next read (each
# second); four 200s in a row may all come from the other worker (clean
# clone CI: a 503 right after them)
ok(wait_until(sub { 12 == grep { post_json('/jobs/echo', '{"n":4}')->{status}
        == 200 } 1 .. 12 }, scaled(10), 'jobs pass'),
    'jobs run again: twelve in a row answered 200');

finish();
