#!/usr/bin/perl
# Submitting through Redis Sentinel from one's own program: liboffload
# (offload_client_conf_t sentinels, master_name, sentinel_password; driven
# by build/line_client) and sdk/python/offload_client.py
# (sentinel_redis()) ask sentinels that have a password for the master,
# submit there and get results.  The same client, not a new one, submits
# again with success at the first try after SENTINEL FAILOVER and after
# SIGKILL of the master (once the sentinels agree on the new one).  A
# stale sentinel naming a replica is passed over by both (ROLE).  A wrong
# sentinel password and all sentinels frozen (SIGSTOP) give a clear error
# within the timeouts, no hang, and no password in it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use LineDriver;
use SentinelTopology;

my $python = '/usr/bin/python3';     # Debian's, with python3-redis
my $root = "$FindBin::Bin/..";
my $SECRET = 'Sentinel-S3cret';
my $WRONG = 'Not-The-S3cret';

my $topo = start_sentinel_topology(name => 'subs', password => $SECRET);
our ($sentinels, $master) = split m{/}, $topo->url;
redis_use($topo->master_port);
start_sidecar(redis => 'sentinel://' . $topo->url,
    conf => "sentinel_password $SECRET;\nredis_timeout 1s;\n"
    . "queue echo { handler echo; workers 2; }\n");
ok(wait_until(sub { redis_cmd('EXISTS', 'offload:{echo}:jobs') },
    scaled(10), 'echo stream'), 'the sidecar serves echo on the master');

# A client program reading a JSON line, answering a line (see
# t/client/line_client.c; the Python one below prints the same).
my $py = <<'PY';
import sys, time
sys.path.insert(0, sys.argv[1])
from offload_client import Client, sentinel_redis
sentinels = [(h, int(p)) for h, p in
             (s.rsplit(":", 1) for s in sys.argv[2].split(","))]
timeout = float(sys.argv[5])
login = dict(zip(("username", "password"), sys.argv[6:8]))
t0 = time.monotonic()
r = sentinel_redis(sentinels, sys.argv[3], sentinel_password=sys.argv[4],
                   socket_timeout=timeout, socket_connect_timeout=timeout,
                   **login)
try:
    r.ping()
    print("connect ok", flush=True)
except Exception as e:
    print("connect error %s: %s %d" % (type(e).__name__, e,
          (time.monotonic() - t0) * 1000), flush=True)
jobs = Client(r)
for line in sys.stdin:
    t0 = time.monotonic()
    try:
        res = jobs.submit("echo", line.strip(), wait=True, timeout=10)
        print("ok", res.status, res.body, flush=True)
    except Exception as e:
        print("error %s: %s %d" % (type(e).__name__, e,
              (time.monotonic() - t0) * 1000), flush=True)
PY
my $dir = tmpdir();
spew("$dir/client.py", $py);

sub start_c {
    my ($password, @login) = @_;
    return start_driver(build_path('line_client'), $sentinels, $master,
        $password, @login);
}

sub start_py {
    my ($password, $timeout, @login) = @_;
    return start_driver($python, "$dir/client.py", "$root/sdk/python",
        $sentinels, $master, $password, $timeout // 2, @login);
}

sub ask {
    my ($d, $json, $timeout) = @_;
    syswrite($d->{in}, "$json\n");
    return line_of($d, $timeout // scaled(15)) // 'no answer';
}

my $c = start_c($SECRET);
like(line_of($c, scaled(10)) // '', qr/^connect ok \d+$/,
    'liboffload: connects to the master the sentinels name');
like(ask($c, '{"n":1}'), qr/^ok 200 \{"n":1\} \d+$/,
    'liboffload: a job through Sentinel, and its result');
my $p = start_py($SECRET);
is(line_of($p, scaled(10)), 'connect ok',
    'offload_client.py: sentinel_redis() connects');
is(ask($p, '{"py":1}'), 'ok 200 {"py":1}',
    'offload_client.py: a job through Sentinel, and its result');

# ---- SENTINEL FAILOVER: the old master becomes a replica
my ($old, $new) = $topo->failover(scaled(20));
ok($new, "SENTINEL FAILOVER: master $old -> " . ($new // 'none'));
# The same C and Python clients submit job $n after $what, on the new
# master, at their first try.
sub both_submit {
    my ($n, $what) = @_;
    my $line = ask($c, qq({"n":$n}));
    diag("liboffload after $what: $line");
    like($line, qr/^ok 200 \{"n":$n\} \d+$/,
        "liboffload: the same client submits on the new master after $what "
        . 'at its first try');
    is(ask($p, qq({"py":$n})), qq(ok 200 {"py":$n}),
        "offload_client.py: so does the same Python client after $what");
}

# Until the sentinels demote it, the old master takes writes that its new
# master's stream then replaces: jobs lost, as for any Sentinel client.
ok(wait_until(sub { (eval { redis_cmd_at($old, 'ROLE')->[0] } // '')
    eq 'slave' }, scaled(15), 'old master demoted'),
    'the old master is a replica now (its clients killed)');
both_submit(2, 'SENTINEL FAILOVER');
ok($topo->wait_ready(scaled(30)), 'the old master follows the new one');

# ---- a stale sentinel, asked first, names the replica: ROLE says so
# (liboffload asks SENTINEL get-master-addr-by-name, redis-py SENTINEL
# MASTERS)
my $stale = free_port();
spawn('stale-sentinel', "$dir/stale.log", {}, 'perl', '-MIO::Socket::INET',
    '-e', <<'PERL', $stale, $old, $master);
$| = 1;
my ($port, $named, $name) = @ARGV;
sub bulk { join '', map { '$' . length($_) . "\r\n$_\r\n" } @_ }
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $s = $l->accept) {
    while (sysread($s, my $buf, 4096)) {
        if ($buf =~ /AUTH/i) {
            syswrite($s, "+OK\r\n");
        } elsif ($buf =~ /get-master-addr-by-name/i) {
            print "asked\n";
            syswrite($s, "*2\r\n" . bulk('127.0.0.1', $named));
        } elsif ($buf =~ /MASTERS/i) {
            print "asked\n";
            syswrite($s, "*1\r\n*10\r\n" . bulk(name => $name,
                ip => '127.0.0.1', port => $named, flags => 'master',
                'num-other-sentinels' => 2));
        }
    }
}
PERL
ok(wait_until(sub { OffloadTest::port_open($stale) }, scaled(5),
    'stale sentinel'),
    "a stale sentinel on $stale names the replica $old");
{
    local $sentinels = "127.0.0.1:$stale,$sentinels";
    my $sc = start_c($SECRET);
    like(line_of($sc, scaled(10)) // '', qr/^connect ok \d+$/,
        'liboffload: the stale sentinel asked first, the client connects '
        . 'to the master');
    like(ask($sc, '{"n":"stale"}'), qr/^ok 200 \{"n":"stale"\} \d+$/,
        '... and its job is answered');
    like(slurp("$dir/stale.log"), qr/^asked$/m,
        '... after asking the stale sentinel first');
    my $asked = () = slurp("$dir/stale.log") =~ /^asked$/mg;
    my $sp = start_py($SECRET);
    is(line_of($sp, scaled(10)), 'connect ok',
        'offload_client.py: the stale sentinel asked first, connects');
    is(ask($sp, '{"py":"stale"}'), 'ok 200 {"py":"stale"}',
        '... to the master: its job is answered');
    ok((() = slurp("$dir/stale.log") =~ /^asked$/mg) > $asked,
        '... after asking the stale sentinel first');
}

# ---- SIGKILL of the master: its connections die with it
$old = $topo->kill_master('KILL');
$new = $topo->wait_master_change($old, scaled(30));
ok($new, "the sentinels promoted " . ($new // 'none') . " after SIGKILL "
    . "of $old");
both_submit(3, 'SIGKILL of the master');

# ---- a wrong sentinel password: says so, without the password
my $w = start_c($WRONG);
my $line = line_of($w, scaled(10)) // '';
like($line, qr/^connect\ no\ sentinel\ of\ sentinel:\/\/\S+\ names\ a\ usable
    \ master\ \(the\ last:\ sentinel\ 127\.0\.0\.1:\d+\ refused\ AUTH\ with
    \ sentinel_user\/sentinel_password:\ WRONGPASS/x,
    'liboffload, wrong sentinel password: the error says which sentinel '
    . 'refused AUTH');
ok(index($line, $WRONG) < 0, '... without the password');
like(ask($w, '{"n":4}'), qr/^error -1 no sentinel of .* refused AUTH/,
    '... and a submit through it fails saying the same');
my $wp = start_py($WRONG);
like(line_of($wp, scaled(10)) // '',
    qr/^connect error ResponseError: WRONGPASS/,
    'offload_client.py, wrong sentinel password: WRONGPASS');

# ---- every sentinel frozen: an error within the timeouts, no hang
$topo->signal_sentinel($_, 'STOP') for $topo->sentinel_ports;
my $t0 = time;
my $d = start_c($SECRET);
$line = line_of($d, scaled(10)) // 'no answer';
my $took = time - $t0;
like($line, qr/^connect\ no\ sentinel\ of\ \S+\ names\ a\ usable\ master
    \ \(the\ last:\ sentinel\ 127\.0\.0\.1:\d+\ did\ not\ answer:
    \ Resource\ temporarily\ unavailable\ \(timeout\ 500\ ms\)\)/x,
    'liboffload, all sentinels frozen: says so') or diag($line);
ok($took < 3, sprintf 'liboffload: in %.2f s (3 sentinels, 500 ms '
    . 'timeouts)', $took);
$t0 = time;
$d = start_py($SECRET, 0.5);
$line = line_of($d, scaled(10)) // 'no answer';
$took = time - $t0;
like($line, qr/^connect error MasterNotFoundError/,
    'offload_client.py, all sentinels frozen: MasterNotFoundError');
# Python's own start-up (about 1 s, more under load) is in the figure
ok($took < scaled(8), sprintf 'offload_client.py: in %.2f s (3 sentinels, '
    . '500 ms timeouts)', $took);
like(ask($c, '{"n":5}'), qr/^ok 200 \{"n":5\} \d+$/,
    'a client already on the master goes on meanwhile');
$topo->signal_sentinel($_, 'CONT') for $topo->sentinel_ports;

# ---- a master user without +role (as README's offload-submitter): the
# check is skipped, the jobs flow
redis_cmd_at($new, 'ACL', 'SETUSER', 'norole', 'on', '>norole-pw',
    '+@all', '-role', '~*', '&*');
like(eval { redis_cmd_at($new, 'AUTH', 'norole', 'norole-pw') } // '',
    qr/OK/, 'a user "norole" on the master');
$d = start_c($SECRET, 'norole', 'norole-pw');
like(line_of($d, scaled(10)) // '', qr/^connect ok \d+$/,
    'liboffload as a user without +role: connects');
like(ask($d, '{"n":"norole"}'), qr/^ok 200 \{"n":"norole"\} \d+$/,
    '... and its job is answered');
$d = start_py($SECRET, undef, 'norole', 'norole-pw');
is(line_of($d, scaled(10)), 'connect ok',
    'offload_client.py as a user without +role: connects');
is(ask($d, '{"py":"norole"}'), 'ok 200 {"py":"norole"}',
    '... and its job is answered');

stop_drivers();
finish();
