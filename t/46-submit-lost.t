#!/usr/bin/perl
# liboffload on one Redis (no sentinels, no cluster) meets connections
# Redis closed under it, as build/line_client: its command connection
# closed while idle (Redis' `timeout`; a restart, CLIENT KILL or a
# proxy's idle reset look the same) is found closed before the next job
# is sent, and a new one made: the submit succeeds, nothing was sent on
# the old one.  Both its connections killed while it waits for a job
# (CLIENT KILL): the wait subscribes again, looks at the result key and
# returns the job's result, not an error that would have its caller
# submit the job again.  An XADD sent whose answer never comes (a proxy
# that drops Redis' answers after it): OFFLOAD_CLIENT_UNKNOWN, the job's
# id given, its body key kept for the entry that did land; offloadctl
# submit prints the id and exits 3.  A big body's key removed while it
# is written (a proxy holds the slices after the first): the slices that
# follow (RPUSHX, from liboffload and offload_client.py) do not make it
# again, the submit fails, no job is added.  offload_client.py: its XADD
# unanswered raises OutcomeUnknown with the job's id (its body key kept);
# its reply channel's SUBSCRIBE held by a proxy, no job is added until
# Redis confirmed it, and a result published at once is heard.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use LineDriver;
use BlackholeProxy;
use KeyspaceEvents;

start_redis();
start_sidecar(conf => <<'CONF');
result_ttl 30s;
queue echo { handler echo; workers 1; }
queue sleep { handler sleep; workers 1; }
CONF
for my $q (qw(echo sleep)) {
    ok(wait_until(sub { redis_cmd('EXISTS', "offload:{$q}:jobs") },
        scaled(10), "$q stream"), "the sidecar serves $q");
}

# Redis' clients now: id => { flags, cmd }
sub clients {
    my %c;
    for (split /\n/, redis_cmd('CLIENT', 'LIST')) {
        my %f = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split / /;
        $c{$f{id}} = \%f if ($f{cmd} // '') ne 'client|list';
    }
    return \%c;
}

sub ask {
    my ($d, $line, $timeout) = @_;
    syswrite($d->{in}, "$line\n");
    return line_of($d, $timeout // scaled(15)) // 'no answer';
}

my %before = %{ clients() };
my $c = start_driver(build_path('line_client'),
    'redis://127.0.0.1:' . redis_port());
like(line_of($c, scaled(10)) // '', qr/^connect ok \d+$/, 'connects');
like(ask($c, '{"n":1}'), qr/^ok 200 \{"n":1\} \d+$/, 'a job, its result');
# the client's connections: new since it started, the one that sent the
# XADD and the one subscribed
my $now = clients();
my @new = grep { !$before{$_} } keys %$now;
my @cmd_conn = grep { $now->{$_}{cmd} eq 'xadd' } @new;
my @sub_conn = grep { $now->{$_}{flags} =~ /P/ } @new;
is(scalar @cmd_conn, 1, 'the client has a command connection')
    or diag(explain($now));
is(scalar @sub_conn, 1, 'and a subscribed one') or diag(explain($now));
my $cmd_conn = $cmd_conn[0] // 0;

# ---- the command connection closed by Redis while idle
redis_cmd('CONFIG', 'SET', 'timeout', '1');
ok(wait_until(sub { !clients()->{$cmd_conn} }, scaled(10),
    'idle connection closed'), 'Redis closed the idle command connection');
redis_cmd('CONFIG', 'SET', 'timeout', '0');
like(ask($c, '{"n":2}'), qr/^ok 200 \{"n":2\} \d+$/,
    'the next job is submitted on a new connection, and answered');
is(redis_cmd('XLEN', 'offload:{echo}:dead'), 0, 'no dead letter');

# ---- both connections killed during a wait
my $line = ask($c, 'submit sleep {"ms":1500}');
like($line, qr/^submitted [0-9a-f]{32}$/, 'a 1.5 s job submitted');
my ($id) = $line =~ /([0-9a-f]{32})/;
syswrite($c->{in}, "wait sleep $id 10000\n");
$now = clients();
my @mine = grep { !$before{$_} && ($now->{$_}{cmd} eq 'xadd'
        || $now->{$_}{flags} =~ /P/) } keys %$now;
my $killed = 0;
$killed += redis_cmd('CLIENT', 'KILL', 'ID', $_) // 0 for @mine;
is($killed, 2, "the client's connections killed during its wait");
# the sleep handler answers the ms it slept: 1500 or a little more
# (and says no error: one of a look at the result key before the job
# ended was left)
like(line_of($c, scaled(15)) // 'no answer',
    qr/^ok 200 \{"ms":1[5-9]\d\d\} \d+$/,
    'the wait still returns the job\'s result, no error left');
like(ask($c, '{"n":3}'), qr/^ok 200 \{"n":3\} \d+$/,
    'and the client goes on');

my $tmp = tmpdir();
my $python = '/usr/bin/python3';        # python3-redis is Debian's
my $sdk = "$FindBin::Bin/../sdk/python";
# sdk.py <port> <sdk dir> <case> [<timeout>]: offload_client.py's answer
spew("$tmp/sdk.py", <<'PY');
import sys
sys.path.insert(0, sys.argv[2])
import redis
from offload_client import Client, OffloadError, OutcomeUnknown
port, case = int(sys.argv[1]), sys.argv[3]
big = '"' + "y" * 1500000 + '"'
try:
    if case == "body":              # a body key removed while written
        jobs = Client(redis.Redis(port=port, socket_timeout=5))
        print("submitted", jobs.submit("lost", big))
    elif case == "unknown":         # the XADD's answer lost
        jobs = Client(redis.Redis(port=port, socket_timeout=0.5))
        print("submitted", jobs.submit("idle", big))
    elif case == "away":            # Redis unreachable during the wait
        jobs = Client(redis.Redis(port=port, socket_timeout=0.3))
        print("ready", flush=True)
        r = jobs.submit("sleep", {"ms": 1500}, wait=True,
                        timeout=float(sys.argv[4]))
        print("result", r.status, r.body)
    elif case == "fast":            # a result published at once
        jobs = Client(redis.Redis(port=port))
        print("ready", flush=True)
        r = jobs.submit("idle", {"fast": 1}, wait=True,
                        timeout=float(sys.argv[4]))
        print("result", r.status, r.body)
except OutcomeUnknown as e:
    print("unknown", e.job_id, e)
except OffloadError as e:
    print("error", e)
except Exception as e:
    print("raised", type(e).__name__, getattr(e, "job_id", None))
PY

# ---- an XADD whose answer is lost: liboffload, offloadctl submit and
# offload_client.py at once, through a proxy that drops Redis' answers
# to XADDs (a queue no worker serves, whose stream exists: the entries
# stay to look at)
redis_cmd('XGROUP', 'CREATE', 'offload:{idle}:jobs', 'workers', '$',
    'MKSTREAM');
my $mute = BlackholeProxy->start(redis_port(), mute_on => qr/XADD/);
my $ctl = build_path('offloadctl') . ' -r 127.0.0.1:' . $mute->port;
open(my $ctl_out, '-|', "$ctl submit idle '{\"n\":4}' 2>$tmp/ctl.err")
    or die "offloadctl: $!";
my $py = start_driver($python, "$tmp/sdk.py", $mute->port, $sdk, 'unknown');
my $u = start_driver(build_path('line_client'),
    'redis://127.0.0.1:' . $mute->port);
like(line_of($u, scaled(10)) // '', qr/^connect ok \d+$/,
    'a client through a proxy that loses the answers to XADDs');
$line = ask($u, 'submit idle big 1500000');
like($line, qr/^unknown [0-9a-f]{32} job \S+ may have been queued/,
    'a big job whose XADD went unanswered: OFFLOAD_CLIENT_UNKNOWN, its id')
    or diag($line);
my ($uid) = $line =~ /^unknown ([0-9a-f]{32})/;
$uid //= 'none';
my ($entry) = grep { ($_->{id} // '') eq $uid }
    @{ stream_entries('offload:{idle}:jobs') };
ok($entry && $entry->{body} == 1_500_000, 'the job is on its queue, '
    . 'under that id');
my $body_key = "offload:{idle}:body:$uid";
is(redis_cmd('LLEN', $body_key), 6, 'its body key is kept, whole');
ok(redis_cmd('PTTL', $body_key) > 10_000, 'to its lifetime (deadline + '
    . 'grace)');

$line = line_of($py, scaled(15)) // 'no answer';
like($line, qr/^unknown [0-9a-f]{32} job \S+ may have been queued/,
    'offload_client.py: a big job whose XADD went unanswered raises '
    . 'OutcomeUnknown, with its id') or diag($line);
($uid) = $line =~ /^unknown ([0-9a-f]{32})/;
$uid //= 'none';
ok(grep({ ($_->{id} // '') eq $uid }
        @{ stream_entries('offload:{idle}:jobs') }),
    'offload_client.py: the job is on its queue, under that id');
is(redis_cmd('LLEN', "offload:{idle}:body:$uid"), 6,
    'offload_client.py: its body key is kept, whole');

my $out = do { local $/; <$ctl_out> } // '';
close $ctl_out;
is($? >> 8, 3, 'offloadctl submit, its XADD unanswered: exit 3');
like($out, qr/^[0-9a-f]{32}\n\z/, 'it prints the job id');
like(slurp("$tmp/ctl.err"), qr/may have been queued/, 'stderr says why');
like(slurp("$tmp/ctl.err"), qr/XADD: timed out: Redis did not take or answer it in time/,
    'in words: no answer in time (before: "Resource temporarily '
    . 'unavailable", hiredis\' EAGAIN)');
chomp $out;
ok(grep({ ($_->{id} // '') eq $out }
        @{ stream_entries('offload:{idle}:jobs') }),
    'and the job is on its queue');
$mute->stop;

# ---- offloadctl submit --wait whose SUBSCRIBE goes unanswered: says so
$mute = BlackholeProxy->start(redis_port(), mute_on => qr/SUBSCRIBE/);
$ctl = build_path('offloadctl') . ' -r 127.0.0.1:' . $mute->port;
system("$ctl submit idle '{\"n\":5}' --wait --timeout 2 >/dev/null "
    . "2>$tmp/ctl.err");
is($? >> 8, 1, 'offloadctl submit --wait, its SUBSCRIBE unanswered: exit 1');
like(slurp("$tmp/ctl.err"),
    qr/Redis SUBSCRIBE: timed out: Redis did not take or answer it in time/,
    'stderr: no answer in time') or diag(slurp("$tmp/ctl.err"));
$mute->stop;

# ---- a body key removed while it is written
redis_cmd('XGROUP', 'CREATE', 'offload:{lost}:jobs', 'workers', '$',
    'MKSTREAM');
redis_cmd('CONFIG', 'SET', 'notify-keyspace-events', 'Klg');

# $start->($port) starts a client submitting a 1.5 MB job to queue lost
# through a proxy at $port that holds what clients send once the body
# key's EXEC went; the client's answer is the next line it prints.  The
# key is removed then, the proxy lets the slices after the first go on.
sub body_removed {
    my ($what, $start) = @_;
    my $hold = BlackholeProxy->start(redis_port(),
        hold_on => qr/\*1\r\n\$4\r\nEXEC\r\n/);
    my $events = KeyspaceEvents->start('offload:{lost}:body:*');

    my $d = $start->($hold->port);
    my $key;
    ok(wait_until(sub {
        ($key) = @{ redis_cmd('KEYS', 'offload:{lost}:body:*') };
        $key;
    }, scaled(10), 'body key'), "$what: the body key's first slice written");
    redis_cmd('DEL', $key // 'none');
    $hold->release;
    like(line_of($d, scaled(15)) // 'no answer', qr/^error.*went while/,
        "$what: removed while written, the submit fails saying so");
    is(join(' ', $events->events), 'rpush expire del',
        "$what: nothing made the key again once removed (its keyspace "
        . 'events)');
    is(redis_cmd('EXISTS', $key // 'none') + redis_cmd('XLEN',
        'offload:{lost}:jobs'), 0, "$what: no body key left, no job added");
    $hold->stop;
}

body_removed('liboffload', sub {
    my $d = start_driver(build_path('line_client'),
        'redis://127.0.0.1:' . $_[0], 5000);
    line_of($d, scaled(10));
    syswrite($d->{in}, "submit lost big 1500000\n");
    return $d;
});
body_removed('offload_client.py', sub {
    start_driver($python, "$tmp/sdk.py", $_[0], $sdk, 'body');
});
redis_cmd('CONFIG', 'SET', 'notify-keyspace-events', '');

# ---- offload_client.py: its reply channel's SUBSCRIBE slow to reach Redis
my $slow = BlackholeProxy->start(redis_port(), hold_from => qr/SUBSCRIBE/);
my $xlen = redis_cmd('XLEN', 'offload:{idle}:jobs');
my $added = sub { redis_cmd('XLEN', 'offload:{idle}:jobs') > $xlen };
$py = start_driver($python, "$tmp/sdk.py", $slow->port, $sdk, 'fast',
    scaled(3));
is(line_of($py, scaled(10)), 'ready', 'offload_client.py: started');
# (half a second for an XADD that should not come)
my ($early, $end) = (0, time + 0.5);
until (($early = $added->()) || time > $end) {
    select(undef, undef, undef, 0.025);
}
ok(!$early, 'offload_client.py: no job added while its SUBSCRIBE is held');
# the worker's answer at once: published as soon as the entry is there
my $answer = sub {
    my ($e) = @{ redis_cmd('XREVRANGE', 'offload:{idle}:jobs', '+', '-',
        'COUNT', 1) };
    my %f = @{ $e->[1] };
    redis_cmd('PUBLISH', $f{reply}, "OR1 $f{id} 200 1 1 1 1\n{\"fast\":1}");
};
$answer->() if $early;
$slow->release;
ok(wait_until($added, scaled(5), 'XADD'),
    'offload_client.py: the job added once Redis confirmed the SUBSCRIBE');
$answer->() unless $early;
is(line_of($py, scaled(10)) // 'no answer', 'result 200 {"fast":1}',
    'offload_client.py: a result published at once is heard');
$slow->stop;

# ---- offload_client.py waiting while Redis does not answer: its
# subscription dropped (the wait then reads the result key) and Redis
# paused past the client's socket_timeout: the wait goes on, and returns
# the result (it raised a TimeoutError without the job's id)
my %pre = %{ clients() };
$py = start_driver($python, "$tmp/sdk.py", redis_port(), $sdk, 'away',
    scaled(15));
is(line_of($py, scaled(10)), 'ready', 'offload_client.py: started');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'sleep job'),
    'its 1.5 s job runs');
$now = clients();
my @subs = grep { !$pre{$_} && $now->{$_}{flags} =~ /P/ } keys %$now;
is(scalar @subs, 1, 'its subscribed connection');
redis_cmd('CLIENT', 'KILL', 'ID', $_) for @subs;
redis_cmd('CLIENT', 'PAUSE', 1000, 'ALL');
$line = line_of($py, scaled(15)) // 'no answer';
like($line, qr/^result 200 \{"ms":1[5-9]\d\d\}$/,
    'offload_client.py: the wait outlives Redis\' pause, the result comes')
    or diag($line);

stop_drivers();
done_testing();
