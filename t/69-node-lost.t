#!/usr/bin/perl
# A whole node lost (supervisor and workers killed at once, as when a host
# dies): another node claims its jobs after claim_idle with XAUTOCLAIM, each
# it was running counting one attempt, and every accepted job is
# answered.  A long job on a live node is never taken from it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

my $queues = <<'CONF';
claim_idle 1s;
queue sleep { handler sleep; workers 2; }
queue echo { handler echo; workers 1; }
CONF

start_redis();
start_sidecar(conf => $queues);
ok(start_jobs_nginx(), 'stack ready');
my $lost = node_name();

# A second node on the same Redis, outside the harness's bookkeeping.
my $dir = tmpdir();
my $conf_b = "$dir/node-b.conf";
spew($conf_b, "redis 127.0.0.1:" . redis_port() . ";\nnode_name other$$;\n"
    . "log $dir/node-b.log info;\nheartbeat 200ms;\n$queues");
sub start_node_b {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/node-b.stderr";
        open STDERR, '>&', \*STDOUT;
        { exec build_path('offload-sidecar'), '-c', $conf_b }
        POSIX::_exit(127);
    }
    ok(wait_until(sub { redis_cmd('EXISTS', "offload:{ctl}:node:other$$") }, 10,
        'node b registered'), 'a second node is up');
    return $pid;
}

# ---- the first node holds two jobs and vanishes at once
my @socks = map { send_post('/jobs/sleep', qq({"ms":1000,"n":$_})) } 1 .. 2;
ok(wait_until(sub { pending_jobs('sleep') == 2 }, 5, 'jobs taken'),
    'the first node holds two jobs');
ok(wait_until(sub {
    my $p = redis_cmd('XPENDING', 'offload:{sleep}:jobs', 'workers', '-',
        '+', 10);
    my %marked = map { $_ => 1 }
        @{ redis_cmd('HVALS', 'offload:{sleep}:running') || [] };
    2 == grep { $marked{ $_->[0] } } @{ ref $p eq 'ARRAY' ? $p : [] };
}, 5, 'marked'), 'both marked running');
my @pids = (sidecar_pid(), map { @$_ } values %{ worker_pids() });
kill 'KILL', @pids;
stop_sidecar();
# gone, or a zombie nobody has reaped yet
sub running { slurp("/proc/$_[0]/stat") =~ /^\S+ \(.*\) [^Z]/ }
ok(wait_until(sub { !grep { running($_) } @pids }, 5, 'node gone'),
    'the whole node is gone');
my $t0 = time;

my $b = start_node_b();
for my $s (@socks) {
    my $a = read_answer($s, scaled(15));
    is($a->{status}, 200, 'a job of the lost node answered 200');
}
my $took = time - $t0;
diag(sprintf 'the lost node\'s jobs answered %.2f s after it died '
    . '(claim_idle 1s)', $took);
my @reclaims = @{ events('reclaim') };
is(scalar @reclaims, 2, 'two reclaim events');
is($reclaims[0]{node}, "other$$", 'by the surviving node');
is($reclaims[0]{report}{reason}, 'node_lost', 'reason node_lost');
my $pending = redis_cmd('XPENDING', 'offload:{sleep}:jobs', 'workers');
is($pending->[0], 0, 'nothing left pending');

# ---- two live nodes: a job longer than claim_idle is not stolen
start_sidecar(conf => $queues);
my $long = send_post('/jobs/sleep', '{"ms":3000}');
my $a = read_answer($long, scaled(15));
is($a->{status}, 200, 'a 3 s job on a live node: 200');
is(scalar @{ events('reclaim') }, 2, 'and nobody claimed it');
ok(!@{ events('crash') }, 'no crash anywhere');

kill 'TERM', $b;
waitpid($b, 0);
is($?, 0, 'node b exits 0');

# ---- names of nodes long gone are forgotten: offload:{ctl}:nodes does not grow
# with every host name a node ever had
redis_cmd('SADD', 'offload:{ctl}:nodes', map { "ghost$_" } 1 .. 50);
ok(wait_until(sub {
    my $m = redis_cmd('SMEMBERS', 'offload:{ctl}:nodes');
    !grep { /^ghost/ } @$m;
}, scaled(10), 'ghosts pruned'), 'fifty names without a registry entry '
    . 'leave offload:{ctl}:nodes');
ok(grep({ $_ eq node_name() } @{ redis_cmd('SMEMBERS', 'offload:{ctl}:nodes') }),
    'the live node stays');

# ---- so are their consumers, once they hold nothing: a queue's group does
# not keep one for every host name a node ever had.  Names offload did not
# make are left alone.
sub consumers {
    my ($queue) = @_;
    return map { { @$_ }->{name} }
        @{ redis_cmd('XINFO', 'CONSUMERS', "offload:{$queue}:jobs", 'workers') };
}
ok(wait_until(sub { !grep { /^other$$:/ } consumers('sleep'), consumers('echo') },
    scaled(10), 'node b forgotten'), 'the consumers of node b, stopped, leave '
    . 'the groups');
ok(scalar(grep { /^\Q$lost\E:/ } consumers('sleep')), 'the live node\'s stay');
redis_cmd('XGROUP', 'CREATECONSUMER', 'offload:{echo}:jobs', 'workers', $_)
    for qw(ghost1:echo:0 ghost1:claim reporting-tool ghost1:echo:x ghost1:sleep:0);
ok(wait_until(sub { !grep { /^ghost1:(echo:0|claim)$/ } consumers('echo') },
    scaled(10), 'ghost consumers forgotten'), 'consumers <node>:<queue>:<slot> '
    . 'and <node>:claim of a node without a registry entry leave');
is_deeply([ sort grep { !/^\Q$lost\E:/ } consumers('echo') ],
    [ qw(ghost1:echo:x ghost1:sleep:0 reporting-tool) ],
    'names offload does not make for this queue stay');

# ---- a reload while a long claim pages through XAUTOCLAIM (100 a page):
# the claim outlives the pools it started with, and every job is run
my $many = 20000;
my $stream = 'offload:{echo}:jobs';
my $far = int(time * 1000) + 600_000;
# in one script, so that no live worker reads them first
redis_cmd('EVAL', <<'LUA', 1, $stream, $many, $far);
for i = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], '*', 'v', 1, 'id', string.format('%032x', i),
    'payload', '{"i":' .. i .. '}', 'reply', 'offload:reply:gone',
    'deadline', ARGV[2], 'submitted', ARGV[2] - 600000, 'attempt', 1)
end
redis.call('XREADGROUP', 'GROUP', 'workers', 'gone:echo:0', 'COUNT',
  ARGV[1], 'STREAMS', KEYS[1], '>')
LUA
sub gone_holds {
    my $p = redis_cmd('XPENDING', $stream, 'workers');
    my %by = map { @$_ } @{ ref $p eq 'ARRAY' && ref $p->[3] eq 'ARRAY'
        ? $p->[3] : [] };
    return $by{'gone:echo:0'} // 0;
}
is(gone_holds(), $many, "a lost node holds $many echo jobs");
ok(wait_until(sub { gone_holds() < $many }, scaled(10), 'claim started'),
    'the claim begins');
kill 'HUP', sidecar_pid();
# its pools replaced as it logs "reloading": the claim was on by then if
# it is on after
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log') =~ /reloading / },
    scaled(10), 'reloading'), 'the sidecar replaces its pools');
my $left = gone_holds();
cmp_ok($left, '>', 0, 'while the claim pages through the lost node\'s '
    . "entries ($left of $many still to claim)");
my $reloads = 0;
ok(wait_until(sub { ($reloads = @{ events('reload') }) >= 1 }, scaled(30),
    'reload'), 'the reload rolls the workers');
ok(wait_until(sub {
    my $keys = redis_cmd('KEYS', 'offload:{echo}:result:*');
    @$keys >= $many && pending_jobs('echo') == 0;
}, scaled(60), 'all run'), "all $many jobs of the lost node run once more");
ok(wait_until(sub { !grep { $_ eq 'gone:echo:0' } consumers('echo') },
    scaled(10), 'gone:echo:0 forgotten'), 'the lost consumer that held them '
    . 'leaves the group once they are claimed');
ok(alive('sidecar'), 'the sidecar lived through it');

finish();
