#!/usr/bin/perl
# A job whose deadline passes after a run of it was cut short is not
# answered "the deadline passed before a worker took the job": that reads
# as "never ran, safe to submit again", and it may have done part of its
# work.  Cut short by a stop (killed at shutdown_timeout: handed back
# marked "interrupted"), or by an earlier attempt.  (A job its node's death
# cut short fails that attempt, and says that its worker died:
# t/74-node-death-attempts.)  A job no worker ever had still says so.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $conf = <<'CONF';
shutdown_timeout 300ms;
queue sleep { handler sleep; workers 1; timeout off; }
CONF

start_redis();
start_sidecar(conf => $conf);
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $stream = 'offload:{sleep}:jobs';

sub submit {
    my ($ms, $deadline) = @_;
    chomp(my $id = `$ctl submit --deadline $deadline sleep '{"ms":$ms}' 2>&1`);
    like($id, qr/^[0-9a-f]{32}$/, "a $ms ms job, deadline $deadline");
    return $id;
}

# the job held by the sleep worker (its entry pending), by XPENDING: the
# registry document would say so only at the next heartbeat
sub running {
    my $p = redis_cmd('XPENDING', $stream, 'workers', '-', '+', 1);
    return '' unless ref $p eq 'ARRAY' && @$p;
    my ($e) = @{ redis_cmd('XRANGE', $stream, $p->[0][0], $p->[0][0]) };
    return $e ? { @{ $e->[1] } }->{id} // '' : '';
}

# Whether the job's deadline (its stream entry's) has passed, by Redis'
# clock, as the worker will judge it.
sub past_deadline {
    my ($id) = @_;
    my ($e) = grep { ($_->{id} // '') eq $id } @{ stream_entries($stream) };
    my $t = redis_cmd('TIME');
    return $e && $t->[0] * 1000 + int($t->[1] / 1000) > $e->{deadline};
}

my $took = 'the deadline passed before a worker took the job';
my $again = 'the deadline passed before the job could run again: an '
    . 'earlier run did not end it';

# ---- cut short by a stop: handed back marked, expired later
my $deadline = scaled(2);
my $id = submit(3000 * $deadline, "${deadline}s");
ok(wait_until(sub { running() eq $id }, scaled(5), 'running'),
    'the job runs');
is(stop_sidecar(), 0, 'the node stops (its worker killed at '
    . 'shutdown_timeout)');
my $e = stream_entries($stream);
is(scalar @$e, 1, 'the job is back in the queue');
is($e->[0]{interrupted}, '1', 'marked interrupted');
is($e->[0]{attempt}, '1', 'its attempt unchanged');
ok(wait_until(sub { past_deadline($id) }, $deadline + 1, 'deadline'),
    'its deadline passes');
start_sidecar(conf => $conf);
my $res = stored_result('sleep', $id);
like($res, qr/^OR1 $id 504 /, 'once started again, the node answers 504');
like($res, qr/"code":"expired".*\Q$again\E/, 'saying an earlier run did '
    . 'not finish') or diag($res);
like(slurp(tmpdir() . '/sidecar.log'),
    qr/job $id expired \d+ ms before a worker took it, not run again /,
    'and so does its log line');

# ---- cut short by the node's death: its attempt fails when the node is
# back, and out of time it is answered that its worker died, which says as
# much as the 504 would
$id = submit(3000 * $deadline, "${deadline}s");
ok(wait_until(sub { running() eq $id }, scaled(5), 'running'),
    'another job runs');
ok(wait_until(sub {
    my $p = redis_cmd('XPENDING', $stream, 'workers', '-', '+', 1);
    my $mark = redis_cmd('HGET', 'offload:{sleep}:running',
        node_name() . ':sleep:0');
    ref $p eq 'ARRAY' && @$p && defined $mark && !ref $mark
        && $mark eq $p->[0][0] }, scaled(5), 'marked'),
    'marked running in Redis');
kill 'KILL', sidecar_pid();
stop_proc('sidecar', 5);
ok(wait_until(sub { past_deadline($id) }, $deadline + 1, 'deadline'),
    'its deadline passes');
start_sidecar(conf => $conf);
$res = stored_result('sleep', $id);
like($res, qr/^OR1 $id 502 .*"code":"worker_crashed".*"reason":"node_lost"/s,
    'a job its SIGKILLed node held: its worker died with its node')
    or diag($res);

# ---- a job no worker had: it never ran, and says so
is(stop_sidecar(), 0, 'the node stops');
$id = submit(1, '1s');
ok(wait_until(sub { past_deadline($id) }, 2, 'deadline'),
    'its deadline passes');
start_sidecar(conf => $conf);
$res = stored_result('sleep', $id);
like($res, qr/"code":"expired".*\Q$took\E/,
    'a job that waited out its deadline in the queue: took by no worker')
    or diag($res);

finish();
