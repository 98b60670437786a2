#!/usr/bin/perl
# Jobs from any program, straight through Redis: an entry without a reply
# channel runs and its result is stored (for result_ttl), nothing
# published; no deadline runs; offloadctl submit / result (ids, --wait,
# exit codes, @file and -, invalid JSON refused before anything is
# written, a big body through the body key); liboffload's own test
# (build/client_test); sdk/python/offload_client.py; and the examples of
# docs/PROTOCOL.md "Submitting jobs from your own code", run as written,
# only their port 6379 replaced by this test's Redis port.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use RedisMonitor;

# python3-redis is Debian's: its python3, whatever else is on the PATH
my $python = '/usr/bin/python3';
my $root = "$FindBin::Bin/..";

start_redis();
start_sidecar(conf => <<'CONF');
result_ttl 30s;
fault_handlers on;
queue echo { handler echo; workers 2; }
queue crash { handler crash; workers 1; max_attempts 1; }
queue hash { handler sha256; workers 1; }
CONF
# a queue nobody serves, whose stream exists (a worker made it once)
redis_cmd('XGROUP', 'CREATE', 'offload:{idle}:jobs', 'workers', '$',
    'MKSTREAM');

my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $tmp = tmpdir();

sub sh_quote { my ($s) = @_; $s =~ s/'/'\\''/g; "'$s'" }

# (exit code, stdout, stderr, seconds) of offloadctl with these arguments
sub ctl {
    my ($stdin, @args) = @_;
    my $cmd = join ' ', $ctl, map { sh_quote($_) } @args;
    $cmd = "$cmd <$stdin" if defined $stdin;
    my $t0 = time;
    my $out = `$cmd 2>$tmp/ctl.err`;
    return ($? >> 8, $out, slurp("$tmp/ctl.err"), time - $t0);
}

# What was published anywhere until a marker of ours came back, as the
# subscriber read it; published_until_marker: how many messages.
sub published_text_until_marker {
    my ($sock) = @_;
    my $marker = 'marker-' . time;
    redis_cmd('PUBLISH', 'offload:test:marker', $marker);
    my ($buf, $sel) = ('', IO::Select->new($sock));
    while (index($buf, $marker) < 0 && $sel->can_read(scaled(5))) {
        sysread($sock, $buf, 65536, length $buf) or last;
    }
    return $buf;
}

sub published_until_marker {
    return () = published_text_until_marker(@_) =~ /pmessage/g;
}

# ---- liboffload: its own test against this stack
ok(wait_until(sub { redis_cmd('EXISTS', 'offload:{echo}:jobs') }, scaled(5),
    'echo stream'), 'the echo workers made their stream');
{
    my $cmd = join ' ', build_path('client_test'), redis_port(),
        free_port();
    my $out = `$cmd 2>&1`;
    is($? >> 8, 0, 'build/client_test passes') or diag($out);
    unlike($out, qr/^not ok/m, 'every one of its checks') or diag($out);
    like($out, qr/^1\.\.(\d+)$/m, 'and it ran to its end');
}

# ---- fire and forget, straight through Redis: stored, not published
my $watch = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "psubscribe: $!";
syswrite($watch, "PSUBSCRIBE *\r\n");
published_until_marker($watch);             # the subscription is on

my $id = '0123456789abcdef00000000000000a1';
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 1, id => $id,
    payload => '{"fire":"forget"}');
my $res = stored_result('echo', $id);
like($res, qr/^OR1 $id 200 \d+ \d+ \d+ \d+\n\{"fire":"forget"\}\z/,
    'an entry of v, id and payload only (no reply, no deadline) runs');
my $ttl = redis_cmd('TTL', "offload:{echo}:result:$id");
ok($ttl > 0 && $ttl <= 30, "its result is kept result_ttl ($ttl s)");
is(published_until_marker($watch), 1, 'and nothing was published');
my ($queue_us) = $res =~ /^OR1 \S+ 200 (\d+)/;
ok($queue_us < 60_000_000, "its queue time counts from the entry id "
    . "($queue_us us)");
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{echo}:jobs') == 0
        && pending_jobs('echo') == 0 }, scaled(5), 'entry gone'),
    'the entry was acked and deleted');

# ---- one job id in two entries (a copy of an entry; a node taken for dead
# while it ran): both run, the first result is kept, and each run
# publishes its own, the first run's first (docs/PROTOCOL.md, step 4: a
# plain job completes by MULTI/EXEC; the script would publish the stored
# one twice)
my $twice = '0123456789abcdef00000000000000b1';
my @entry = (v => 1, id => $twice, reply => 'offload:reply:twice');
redis_cmd('XADD', 'offload:{echo}:jobs', '*', @entry, payload => '{"run":1}');
my $first = stored_result('echo', $twice);
redis_cmd('XADD', 'offload:{echo}:jobs', '*', @entry, payload => '{"run":2}');
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{echo}:jobs') == 0
        && pending_jobs('echo') == 0 }, scaled(5), 'both run'),
    'one id in two entries: both acked and deleted');
like($first, qr/\n\{"run":1\}\z/, 'the first run stored its result');
is(redis_cmd('GET', "offload:{echo}:result:$twice"), $first,
    'and the second kept it');
my @runs = published_text_until_marker($watch)
    =~ /offload:reply:twice\r\n\$\d+\r\nOR1 $twice 200 [^\n]*\n\{"run":(\d)\}/g;
is("@runs", '1 2', 'each run published its own result, the first first');
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log') =~ /\[warn\] .*job \Q$twice\E: a result was stored under its id already and is kept, not this run's: the job ran twice, or two jobs were given one id/ },
    scaled(5), 'said'), 'the sidecar says so (a transaction)');

# the same completed by the script (a reply channel with a hash tag)
my $twice2 = '0123456789abcdef00000000000000b2';
@entry = (v => 1, id => $twice2, reply => 'offload:{echo}:reply:twice');
redis_cmd('XADD', 'offload:{echo}:jobs', '*', @entry, payload => '{"run":1}');
$first = stored_result('echo', $twice2);
my $again = redis_cmd('XADD', 'offload:{echo}:jobs', '*', @entry,
    payload => '{"run":2}');
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log') =~ /\[warn\] .*1 of the 1 jobs completed from entry \Q$again\E on found a result stored under their ids already/ },
    scaled(5), 'said'), 'the sidecar says so (the script)');
is(redis_cmd('GET', "offload:{echo}:result:$twice2"), $first,
    'the first result kept');

# a bad entry with an id and no reply: its error is stored, dead letter
my $bad = '0123456789abcdef00000000000000a2';
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 7, id => $bad,
    payload => '{}');
like(stored_result('echo', $bad), qr/^OR1 $bad 400 .*bad_job/s,
    'a bad job without a reply channel: its 400 bad_job is stored');
ok(wait_until(sub {
    grep { ($_->{id} // '') eq $bad } @{ stream_entries('offload:{echo}:dead') }
}, scaled(5), 'dead letter'), 'and it is a dead letter');
is(published_until_marker($watch), 1, 'still nothing published');

# a fire-and-forget job that kills its worker: a dead letter, its 502 stored
my $doomed = '0123456789abcdef00000000000000a4';
redis_cmd('XADD', 'offload:{crash}:jobs', '*', v => 1, id => $doomed,
    payload => '{}');
like(stored_result('crash', $doomed),
    qr/^OR1 $doomed 502 .*worker_crashed/s,
    'a fire-and-forget job that crashed its worker: its 502 is stored');
ok(grep({ ($_->{id} // '') eq $doomed }
        @{ stream_entries('offload:{crash}:dead') }),
    'and it is a dead letter');
is(published_until_marker($watch), 1, 'nothing published for it');

# a dead fire-and-forget job (no reply, no deadline) goes back on its queue
# with offloadctl retry, still without either (the queue "idle", which no
# worker serves, keeps the entry to look at)
my $retried = '0123456789abcdef00000000000000a3';
redis_cmd('XADD', 'offload:{idle}:dead', '*', v => 1, id => $retried,
    payload => '{"again":1}', reason => 'worker_crashed');
{
    my ($rc, $out, $err) = ctl(undef, 'retry', 'idle', $retried);
    is($rc, 0, 'retry of a dead fire-and-forget job: exit 0') or diag($err);
    my ($e) = grep { ($_->{id} // '') eq $retried }
        @{ stream_entries('offload:{idle}:jobs') };
    ok($e && $e->{payload} eq '{"again":1}' && $e->{attempt} == 1,
        'it is on its queue again') or diag(explain($e));
    ok($e && !exists $e->{reply} && !exists $e->{deadline},
        'without a reply channel or a deadline');
    redis_cmd('DEL', 'offload:{idle}:jobs');
    redis_cmd('XGROUP', 'CREATE', 'offload:{idle}:jobs', 'workers', '$',
        'MKSTREAM');
}

# ---- offloadctl submit, result
my ($rc, $out, $err) = ctl(undef, 'submit', 'echo', '{"n":1}');
is($rc, 0, 'submit: exit 0');
like($out, qr/^[0-9a-f]{32}\n\z/, 'submit prints the job id');
chomp(my $sid = $out);
ok(wait_until(sub { (ctl(undef, 'result', 'echo', $sid))[0] == 0 },
    scaled(10), 'result'), 'result: exit 0 once the job ran');
($rc, $out) = ctl(undef, 'result', 'echo', $sid);
is($out, "{\"n\":1}\n", 'result prints the stored result');
ok(redis_cmd('TTL', "offload:{echo}:result:$sid") > 0,
    'which was stored with a TTL');

($rc, $out, $err) = ctl(undef, 'submit', 'echo', '{"w":[1,2]}', '--wait');
is($rc, 0, 'submit --wait: exit 0 on 200');
is($out, "{\"w\":[1,2]}\n", 'and prints the result');

($rc, $out, $err) = ctl(undef, 'submit', '--wait', 'hash', '{"data":5}');
is($rc, 1, 'a handler error: exit 1');
like($out, qr/"code":"handler_error"/, 'the error JSON on stdout');
like($err, qr/answered 422/, 'stderr says 422');

($rc, $out, $err, my $took) = ctl(undef, 'submit', 'idle', '{}', '--wait',
    '--timeout', '300ms');
is($rc, 1, 'no worker, --timeout 300ms: exit 1');
ok($took >= 0.3 && $took < scaled(3), sprintf('within the timeout '
    . '(%.2f s)', $took));
like($err, qr/no result for job [0-9a-f]{32} within 300 ms/,
    'stderr says so');

spew("$tmp/job.json", '{"from":"file"}');
($rc, $out) = ctl(undef, 'submit', '--wait', 'echo', "\@$tmp/job.json");
is("$rc $out", "0 {\"from\":\"file\"}\n", '@file');
spew("$tmp/stdin.json", '{"from":"stdin"}');
($rc, $out) = ctl("$tmp/stdin.json", 'submit', '--wait', 'echo', '-');
is("$rc $out", "0 {\"from\":\"stdin\"}\n", '- reads stdin');

my $mon = RedisMonitor->start;
($rc, $out, $err) = ctl(undef, 'submit', 'echo', '{"a":');
is($rc, 2, 'invalid JSON: exit 2');
like($err, qr/not JSON/, 'stderr says so');
($rc, $out, $err) = ctl(undef, 'submit', 'echo', "\@$tmp/none.json");
is($rc, 1, 'a missing @file: exit 1');
$mon->catch_up(5);
is(scalar(grep { $_->[1] =~ /^(XADD|RPUSH|MULTI)$/i
                 && ($_->[2] // '') =~ /^offload:\{echo\}:(jobs|body:)/ }
          @{ $mon->seen }), 0,
    'nothing was written to the queue for either');

($rc, $out, $err) = ctl(undef, 'submit', 'nosuch', '{}', '--wait');
is($rc, 1, 'an unknown queue: exit 1');
like($err, qr/unknown queue "nosuch"/, 'stderr says so');
is(redis_cmd('EXISTS', 'offload:{nosuch}:jobs'), 0, 'no stream made');

($rc, $out, $err) = ctl(undef, 'result', 'echo', 'f' x 32);
is($rc, 1, 'result of an unknown job: exit 1');
like($err, qr/no result for job f{32}/, 'stderr says there is none');
($rc) = ctl(undef, 'submit', 'echo');
is($rc, 2, 'submit without a payload: exit 2');
($rc) = ctl(undef, 'submit', 'echo', '{}', '--timeout', 'soon', '--wait');
is($rc, 2, 'an invalid --timeout: exit 2');

# a big body: through the body key, in slices, and a big result back
my $big = '"' . ('x' x (2_500_000)) . '"';
spew("$tmp/big.json", $big);
$mon->forget;
($rc, $out, $err) = ctl(undef, 'submit', '--wait', 'echo', "\@$tmp/big.json");
is($rc, 0, 'a 2.5 MB body: exit 0') or diag($err);
ok($out eq "$big\n", 'its result came back whole');
$mon->catch_up(5);
ok($mon->longest_arg <= 262_144 + 1024, 'no command carried over a slice '
    . '(longest argument ' . $mon->longest_arg . ')');
ok(scalar(grep { $_->[1] =~ /^RPUSHX?$/i
                 && ($_->[2] // '') =~ /^offload:\{echo\}:body:/ }
          @{ $mon->seen }) >= 9, 'the body went by RPUSH (the first '
    . 'slice) and RPUSHX to its body key');

# ---- the Python client
my $py = <<'PY';
import sys
sys.path.insert(0, sys.argv[2])
import redis
from offload_client import Client, OffloadError, Timeout, UnknownQueue
jobs = Client(redis.Redis(port=int(sys.argv[1])))
r = jobs.submit("echo", {"py": 1}, wait=True, timeout=10)
print("wait", r.status, r.body)
i = jobs.submit("echo", '{"py":2}')
print("id", len(i))
print("later", jobs.wait("echo", i, timeout=10).body)
print("result", jobs.result("echo", i).status)
print("none", jobs.result("echo", "0" * 32))
r = jobs.submit("hash", {"data": 5}, wait=True, timeout=10)
print("error", r.status, r.json()["error"]["code"])
big = "\"" + "y" * 1500000 + "\""
print("big", jobs.submit("echo", big, wait=True, timeout=30).body == big)
# a timeout past what select() takes counts as 10 years
print("far", jobs.submit("echo", {"far": 1}, wait=True, timeout=1e13).status)
try:
    jobs.submit("nosuch", {})
except UnknownQueue:
    print("unknown queue")
try:
    jobs.submit("idle", {}, wait=True, timeout=0.3)
except Timeout:
    print("timeout")
try:
    jobs.submit("echo", '{"a":')
except ValueError:
    print("not JSON")
for nan in ('{"a":NaN}', {"a": float("inf")}):
    try:
        jobs.submit("echo", nan)
    except ValueError:
        print("NaN refused")
# a deadline of 0 (none, in liboffload) or less expired the job at once
for d in (0, -1):
    try:
        jobs.submit("echo", {}, deadline=d)
    except ValueError:
        print("deadline", d, "refused")
# result lists no worker wrote: longer than a result can be, an element
# over a slice
r, jid = redis.Redis(port=int(sys.argv[1])), "e" * 32
key = "offload:{echo}:result:" + jid
for what, rest in (("long list", [""] * 2046), ("fat element",
                                                 ["x" * 262145])):
    r.delete(key)
    r.rpush(key, "OR1 %s 200 1 1 1 1\n" % jid, *rest)
    try:
        jobs.result("echo", jid)
        print(what, "read")
    except OffloadError:
        print(what, "refused")
r.delete(key)
PY
spew("$tmp/client.py", $py);
$out = `$python $tmp/client.py ${\ redis_port()} $root/sdk/python 2>&1`;
is($? >> 8, 0, 'offload_client.py: the script ran') or diag($out);
my $what = 'submit (wait or not), wait, result, errors, a big body, a '
    . 'timeout of 1e13 s, NaN, result lists no worker wrote';
is($out, <<'OUT', $what);
wait 200 {"py":1}
id 32
later {"py":2}
result 200
none None
error 422 handler_error
big True
far 200
unknown queue
timeout
not JSON
NaN refused
NaN refused
deadline 0 refused
deadline -1 refused
long list refused
fat element refused
OUT

# ---- docs/PROTOCOL.md's examples, as written
my ($section) = slurp("$root/docs/PROTOCOL.md")
    =~ /^## Submitting jobs from your own code\n(.*?)^## /ms;
ok($section, 'PROTOCOL.md has the section');
my @blocks;
while ($section =~ /^```(sh|python)\n(.*?)^```$/msg) {
    push @blocks, [ $1, $2 =~ s/\b6379\b/${\ redis_port()}/gr ];
}
is(scalar @blocks, 4, 'two redis-cli blocks and two Python ones');
my $port = redis_port();
ok(!grep({ $_->[1] =~ /6379/ } @blocks) && grep({ $_->[1] =~ /$port/ }
    @blocks) == 4, 'each names the port, replaced by ours');

spew("$tmp/doc1.sh", $blocks[0][1]);
$out = `cd $root && bash $tmp/doc1.sh 2>&1`;
like($out, qr/^\d+-\d+$/, 'redis-cli XADD: an entry id') or diag($out);
my ($doc_id) = $blocks[0][1] =~ /id ([0-9a-f]{32})/;
stored_result('echo', $doc_id);
spew("$tmp/doc2.sh", $blocks[1][1]);
$out = `cd $root && bash $tmp/doc2.sh 2>&1`;
like($out, qr/^OR1 $doc_id 200 \d+ \d+ \d+ \d+\n\{"hello":"redis-cli"\}$/,
    'redis-cli GET: the result, as documented') or diag($out);

spew("$tmp/doc3.py", $blocks[2][1]);
$out = `cd $root && $python $tmp/doc3.py 2>&1`;
is($out, "200 {'hello': 'redis-py'}\n", 'the plain redis-py example');
spew("$tmp/doc4.py", $blocks[3][1]);
$out = `cd $root && $python $tmp/doc4.py 2>&1`;
is($out, "200 {'hello': 'sdk'}\n{'later': True}\n",
    'the offload_client.py example');

finish();
