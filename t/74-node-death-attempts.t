#!/usr/bin/perl
# A job its whole node died under (the sidecar SIGKILLed, as the OOM killer
# or a host's reboot would) fails one attempt when the node comes back
# under the same node_name, as it does when another node claims it: with
# max_attempts 1 it is dead-lettered node_lost, not run a second time, and
# a job that kills its node on every run ends dead-lettered after
# max_attempts instead of running forever.  Which job was running, the
# supervisor told Redis (offload:{q}:running); the others its worker held
# were only read, or finished in the same slice of work without being
# completed yet: they run at their attempt.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $conf = <<'CONF';
queue once {
    handler sleep; workers 1; prefetch 4; timeout off; max_attempts 1;
}
queue twice { handler sleep; workers 1; timeout off; max_attempts 2; }
CONF

start_redis();
start_sidecar(conf => $conf);
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();

sub submit {
    my ($queue, $ms) = @_;
    chomp(my $id = `$ctl submit $queue '{"ms":$ms}' 2>&1`);
    like($id, qr/^[0-9a-f]{32}$/, "a $ms ms job on $queue");
    return $id;
}

# The queue's entry of a job: [entry id, attempt], or [].
sub entry_of {
    my ($queue, $id) = @_;
    my $r = redis_cmd('XRANGE', "offload:{$queue}:jobs", '-', '+');
    for my $e (@{ ref $r eq 'ARRAY' ? $r : [] }) {
        my %f = @{ $e->[1] };
        return [ $e->[0], $f{attempt} // 1 ] if ($f{id} // '') eq $id;
    }
    return [];
}

# Whether the job runs at the attempt, marked running for the slot in Redis
# (what the next worker goes by), its entry pending.
sub marked {
    my ($queue, $id, $attempt) = @_;
    my ($entry, $at) = @{ entry_of($queue, $id) };
    return 0 unless $entry && $at == $attempt;
    my $mark = redis_cmd('HGET', "offload:{$queue}:running",
        node_name() . ":$queue:0");
    return defined $mark && !ref $mark && $mark eq $entry;
}

sub kill_node {
    kill 'KILL', sidecar_pid();
    stop_proc('sidecar', 5);
}

sub dead_of {
    my ($queue, $id) = @_;
    return [ grep { ($_->{id} // '') eq $id }
             @{ stream_entries("offload:{$queue}:dead") } ];
}

my $why = "was running in this slot's previous worker, which did not end "
    . 'it (its sidecar was killed, or Redis was away when it died): that '
    . 'run fails one attempt';

# ---- max_attempts 1: the running job is not run again; the one that
# finished before it in the same slice of work, not yet completed, and
# the one read behind it run
is(stop_sidecar(), 0, 'the node stops, so that the jobs are read at once');
my $before = submit('once', 0);
my $held = submit('once', 60_000);
my $behind = submit('once', 10);
start_sidecar(conf => $conf);
ok(wait_until(sub { marked('once', $held, 1) }, scaled(10), 'marked'),
    'the long job runs, marked running');
# the case that matters: its worker ran the short job and went on in
# the same slice (as it does, within 1 ms), its completion not sent yet
diag('the short job before it: ' . (redis_cmd('EXISTS',
    "offload:{once}:result:$before") ? 'completed' : 'still pending')
    . ' when the node dies');
kill_node();
start_sidecar(conf => $conf);

my $res = stored_result('once', $held);
like($res, qr/^OR1 $held 502 .*"code":"worker_crashed".*"reason":"node_lost"/s,
    'the running job is answered 502, its worker lost with its node')
    or diag($res);
like($res, qr/"attempts":1\b/, 'after its one attempt');
my $dead = dead_of('once', $held);
is(scalar @$dead, 1, 'it is dead-lettered once');
is($dead->[0]{reason}, 'node_lost', 'reason node_lost');

for my $case ([ $before, 'the job that finished before it' ],
              [ $behind, 'the job read behind it' ]) {
    my ($id, $what) = @$case;
    $res = stored_result('once', $id);
    like($res, qr/^OR1 $id 200 /, "$what: 200") or diag($res);
    is(scalar @{ dead_of('once', $id) }, 0, '... and no dead letter');
}
ok(wait_until(sub { pending_jobs('once') == 0 }, scaled(5), 'settled'),
    'nothing left pending');
like(slurp(tmpdir() . '/sidecar.log'), qr/entry \S+ \Q$why\E/,
    'the log says why');

# ---- a job that takes its node down on every run: max_attempts 2 runs,
# then a dead letter
my $poison = submit('twice', 60_000);
for my $run (1, 2) {
    ok(wait_until(sub { marked('twice', $poison, $run) }, scaled(10),
        "run $run"), "the job runs, attempt $run");
    kill_node();
    start_sidecar(conf => $conf);
}
$res = stored_result('twice', $poison);
like($res, qr/^OR1 $poison 502 .*"reason":"node_lost".*"attempts":2\b/s,
    'after max_attempts runs that each took the node down, it is answered '
    . '502 node_lost') or diag($res);
is(scalar @{ dead_of('twice', $poison) }, 1, 'and dead-lettered');
ok(wait_until(sub { pending_jobs('twice') == 0 }, scaled(5), 'settled'),
    'it is not run a third time');

# ---- the mark goes with its consumer: a node's, once it is forgotten
redis_cmd('HSET', 'offload:{twice}:running', 'gone9:twice:0', '1-0');
redis_cmd('XGROUP', 'CREATECONSUMER', 'offload:{twice}:jobs', 'workers',
    'gone9:twice:0');
ok(wait_until(sub { !redis_cmd('HEXISTS', 'offload:{twice}:running',
    'gone9:twice:0') }, scaled(15), 'forgotten'),
    'a lost node\'s mark leaves with its consumer');

finish();
