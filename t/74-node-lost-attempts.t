#!/usr/bin/perl
# A node lost for good (supervisor and workers killed at once, nothing
# started again under its name): another node claims its entries after
# claim_idle.  The job it was running (marked in offload:{q}:running)
# fails one attempt; the one it had only read goes back to the queue
# unchanged, and runs at its attempt (it was dead-lettered node_lost on a
# one-attempt queue, as if it had run).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $queues = <<'CONF';
claim_idle 1s;
queue once {
    handler sleep; workers 1; prefetch 4; timeout off; max_attempts 1;
}
CONF

start_redis();
start_sidecar(conf => $queues);
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $stream = 'offload:{once}:jobs';

sub submit {
    my ($ms) = @_;
    chomp(my $id = `$ctl submit once '{"ms":$ms}' 2>&1`);
    like($id, qr/^[0-9a-f]{32}$/, "a $ms ms job");
    return $id;
}

# The stream entry id of a job, or ''.
sub entry_of {
    my ($id) = @_;
    my $r = redis_cmd('XRANGE', $stream, '-', '+');
    for my $e (@{ ref $r eq 'ARRAY' ? $r : [] }) {
        return $e->[0] if ({ @{ $e->[1] } }->{id} // '') eq $id;
    }
    return '';
}

sub dead_of {
    my ($id) = @_;
    return [ grep { ($_->{id} // '') eq $id }
             @{ stream_entries('offload:{once}:dead') } ];
}

# ---- node A reads both, runs the long one, and is lost
is(stop_sidecar(), 0, 'node A stops, so that both jobs are read at once');
my $held = submit(60_000);
my $behind = submit(10);
start_sidecar(conf => $queues);
ok(wait_until(sub {
    my $mark = redis_cmd('HGET', 'offload:{once}:running',
        node_name() . ':once:0');
    defined $mark && !ref $mark && $mark eq entry_of($held) },
    scaled(10), 'marked'), 'node A runs the long job, marked running');
is(pending_jobs('once'), 2, 'and holds both');
my @pids = (sidecar_pid(), map { @$_ } values %{ worker_pids() });
kill 'KILL', @pids;
stop_sidecar();

# ---- node B, another name, claims them
my $dir = tmpdir();
my $conf_b = "$dir/node-b.conf";
spew($conf_b, "redis 127.0.0.1:" . redis_port() . ";\nnode_name other$$;\n"
    . "log $dir/node-b.log info;\nheartbeat 200ms;\nshutdown_timeout 1s;\n"
    . $queues);
sub start_b {
    spawn('node-b', "$dir/node-b.stderr", {}, build_path('offload-sidecar'),
        '-c', $conf_b);
}

sub stop_b { is(stop_proc('node-b') >> 8, 0, 'node B stops') }

start_b();

my $res = stored_result('once', $held, scaled(15));
like($res, qr/^OR1 $held 502 .*"reason":"node_lost"/s,
    'the job node A was running: 502 node_lost') or diag($res);
is(scalar @{ dead_of($held) }, 1, '... dead-lettered');
$res = stored_result('once', $behind, scaled(15));
like($res, qr/^OR1 $behind 200 /, 'the job it had only read runs on node B')
    or diag($res);
is(scalar @{ dead_of($behind) }, 0, '... and is no dead letter');
my @reclaims = grep { ($_->{report}{entry_id} // '') ne '' }
    @{ events('reclaim') };
is(scalar @reclaims, 1, 'one reclaim event: the running job\'s');
ok(wait_until(sub { pending_jobs('once') == 0 }, scaled(5), 'settled'),
    'nothing left pending');
like(slurp("$dir/node-b.log"), qr/claimed entries a lost node had only (?x:
    )read went back to the queue unchanged: 1$/m, 'node B says so');
stop_b();

# ---- what node B's claimer holds besides its page does not go back: an
# entry marked running whose failure Redis refused, say.  It stays, its
# mark kept, until it is idle, then fails its attempt (it went back
# unchanged with the page of another lost node's entry and ran again
# uncharged; or its mark went with its lost consumer, and the same).
my $read = submit(10);
my $marked = submit(10);
redis_cmd('XREADGROUP', 'GROUP', 'workers', 'gone:once:0', 'COUNT', 1,
    'STREAMS', $stream, '>');
ok(wait_until(sub {
    my $p = redis_cmd('XPENDING', $stream, 'workers', 'IDLE', 1100, '-', '+',
        10);
    ref $p eq 'ARRAY' && @$p == 1 }, scaled(5), 'idle'),
    'a lost node has read one job, idle past claim_idle');
redis_cmd('XREADGROUP', 'GROUP', 'workers', "other$$:claim", 'COUNT', 1,
    'STREAMS', $stream, '>');
my $marked_entry = entry_of($marked);
redis_cmd('HSET', 'offload:{once}:running', 'gone:once:0', $marked_entry);
start_b();
# the claimer's entry kept from idling until the other is claimed and run
ok(wait_until(sub {
    redis_cmd('XCLAIM', $stream, 'workers', "other$$:claim", 0,
        $marked_entry, 'JUSTID');
    redis_cmd('EXISTS', "offload:{once}:result:$read") }, scaled(15),
    'read job run'), 'the lost node\'s job runs on node B');
like(stored_result('once', $read), qr/^OR1 $read 200 /, '... answered 200');
$res = stored_result('once', $marked, scaled(15));
like($res, qr/^OR1 $marked 502 .*"reason":"node_lost"/s,
    'the marked job node B\'s claimer held: 502 node_lost, not run')
    or diag($res);
is(scalar @{ dead_of($marked) }, 1, '... dead-lettered');

# ---- a job whose node goes down before its mark (in its first 0.1 s):
# a claim gives it back unchanged OFFLOAD_LOST_FREE (2) times, then fails
# its attempt as a marked one's, so it cannot take node after node down
my $long = submit(60_000);
ok(wait_until(sub {
    my $mark = redis_cmd('HGET', 'offload:{once}:running', "other$$:once:0");
    defined $mark && !ref $mark && $mark eq entry_of($long) },
    scaled(10), 'B busy'), 'node B\'s one worker runs a long job');
my $poison = submit(10);
for my $lost (1 .. 3) {
    my $entry = entry_of($poison);
    redis_cmd('XREADGROUP', 'GROUP', 'workers', 'gone:once:0', 'COUNT', 1,
        'STREAMS', $stream, '>');
    ok(wait_until(sub { entry_of($poison) ne $entry }, scaled(10),
        'claimed'), "a lost node read it ($lost), node B claimed it");
    next if $lost == 3;
    my %f = @{ redis_cmd('XRANGE', $stream, entry_of($poison),
        entry_of($poison))->[0][1] // [] };
    is($f{lost}, $lost, "... and gave it back with lost $lost");
}
$res = stored_result('once', $poison, scaled(5));
like($res, qr/^OR1 $poison 502 .*"reason":"node_lost"/s,
    'the third claim failed its one attempt: 502 node_lost') or diag($res);
is(dead_of($poison)->[0]{lost}, 2, '... dead-lettered, lost 2');
stop_b();

# ---- marks that cannot be read (a server without HVALS, an ACL from
# before the marks): each claimed entry fails an attempt, as before there
# were marks, and the claimer says why once
restart_redis(args => ['--rename-command', 'HVALS', '']);
start_b();
ok(wait_until(sub { @{ redis_cmd('XINFO', 'GROUPS', $stream) || [] } },
    scaled(10), 'group'), 'node B makes the queue');
stop_b();
my @unmarked = map { submit(10) } 1 .. 2;
redis_cmd('XREADGROUP', 'GROUP', 'workers', 'gone:once:0', 'COUNT', 2,
    'STREAMS', $stream, '>');
my $log_at = -s "$dir/node-b.log";
start_b();
for my $id (@unmarked) {
    $res = stored_result('once', $id, scaled(15));
    like($res, qr/^OR1 $id 502 .*"reason":"node_lost"/s,
        'a lost node\'s job claimed without marks: 502 node_lost')
        or diag($res);
}
my @said = substr(slurp("$dir/node-b.log"), $log_at)
    =~ /redis refuses the read of the running marks \(HVALS\)/g;
is(scalar @said, 1, 'node B says once that it cannot read the marks');
stop_b();

finish();
