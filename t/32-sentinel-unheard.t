#!/usr/bin/perl
# A failover nginx learns of only by asking.  The sentinel the nginx worker
# watches stops monitoring the master (SENTINEL REMOVE): it still answers
# the watch's PINGs, so the worker never subscribes anew (no re-check
# round), and it never announces +switch-master, as a sentinel cut off in
# a minority partition would not.  The old master refuses REPLICAOF (ACL),
# so the sentinels cannot demote it: it takes writes, as one on nginx's
# side of that partition would.
#
# Asked on a reconnect: after a SENTINEL FAILOVER, one of nginx's
# connections to the old master (the reply subscriber) is killed: its
# reconnect asks the sentinels, an ordinary question, and the answer names
# the new master.  This proves that such an answer moves every connection,
# the command connection too: nginx keeps no connection to the old master,
# and an async job accepted after it is on the new master.  Before the
# fix only the reconnecting link moved and the XADDs kept going to the old
# master, lost once it is demoted.
#
# Asked for the count (wait_replicas=all): nothing is killed; the worker's
# query connection is on a sentinel that did switch, and its count of the
# replicas, once a second, is of the new master's (none up yet: the old
# master, listed as its replica, refuses to follow).  The count names the
# master it is of: nginx moves to the new master, and every async job
# answered 202 is there.  Before the fix WAIT 0, for the new master's
# count, was met at once on the old master: each job went there, 202,
# lost once it is demoted (t/36-sentinel-failover lost 25 this way in 1
# run of 15: the failover's leader announces +switch-master only once the
# other replicas follow the new master, about a second after the other
# sentinels switched).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use SentinelTopology;

plan skip_all => 'needs ss (iproute2)' unless -x '/usr/bin/ss'
    || -x '/bin/ss';

# The stack on a new topology, nginx with $opt after the sentinel:// URL,
# up to the failover unheard: returns (topology, old master, new master,
# the nginx worker's pid).  $before runs once the watched sentinel is
# known, before it forgets the master.
sub failover_unheard {
    my ($label, $opt, $before) = @_;
    my $topo = start_sentinel_topology(name => 'unheard');
    my $old = $topo->master_port;
    redis_use($old);
    # the node's registry entry (3 heartbeats, 45 s) outlives the test on
    # the new master, which has it from before the failover: jobs are not
    # refused no_workers there (with 10 s, a slow failover let it expire;
    # with 60 s, a sidecar slow to connect under ASan wrote its first
    # document a minute late)
    start_sidecar(heartbeat => '15s',
        conf => "queue echo { handler echo; workers 1; }\n");
    ok(start_jobs_nginx(redis => 'sentinel://' . $topo->url . $opt,
        workers => 1, server => "    location /async/ { offload_pass echo; "
            . "offload_mode async; }\n"), "$label: stack ready");
    my ($worker) = nginx_worker_pids();
    # the worker's stream and the node document on the old master, then
    # on the replica, before the failover: a replica promoted without them
    # answers unknown_queue (or no_workers)
    ok(wait_until(sub { redis_cmd_at($old, 'EXISTS', 'offload:{echo}:jobs') },
        scaled(10), 'the queue\'s stream'), "$label: the worker made its "
        . 'stream');
    ok(wait_until(sub { (node_doc() || {})->{queues}{echo} }, scaled(20),
        'the node document'), "$label: the node registered the queue");
    # not WAIT (see wait_replicated): after its full sync at start-up,
    # Redis may send the replica nothing for up to a second, and a
    # failover that fast promoted an empty replica (3 CI runs in 6, 1
    # local run in 4)
    my ($replica) = grep { $_ != $old } $topo->redis_ports;
    ok(wait_replicated($old, 1, scaled(10))
        && redis_cmd_at($replica, 'EXISTS', 'offload:{echo}:jobs',
            'offload:{ctl}:node:' . node_name()) == 2,
        "$label: ... and the replica $replica has both");

    my $watched;
    ok(wait_until(sub {
        ($watched) = grep { grep { $_->{psub} }
            $topo->clients_of($_, $worker) } $topo->sentinel_ports;
        $watched;
    }, scaled(10), 'nginx subscribed'), "$label: nginx watches sentinel "
        . ($watched // '-'));
    $before->($topo, $worker, $watched) if $before;
    is($topo->sentinel_cmd($watched, 'SENTINEL', 'REMOVE', 'unheard'), 'OK',
        "$label: the watched sentinel forgets the master");
    is(redis_cmd_at($old, 'ACL', 'SETUSER', 'default', '-replicaof',
        '-slaveof'), 'OK', "$label: the old master refuses REPLICAOF");

    my @live = grep { $_ != $watched } $topo->sentinel_ports;
    is($topo->request_failover($live[0]), 'OK', "$label: SENTINEL FAILOVER");
    my $new;
    ok(wait_until(sub {
        my %named = map { ($topo->sentinel_master($_) // 0) => 1 } @live;
        ($new) = keys %named;
        keys %named == 1 && $new && $new != $old;
    }, scaled(20), 'the live sentinels agree'), "$label: master $old -> "
        . ($new // '-') . ' for the sentinels that still watch it');
    return ($topo, $old, $new, $worker);
}

sub stop_stack {
    my ($topo) = @_;
    stop_nginx();
    stop_sidecar();
    stop_proc("sentinel-$_", 5) for $topo->sentinel_ports;
    stop_proc("redis-$_", 5) for $topo->redis_ports;
}

# ---- asked on a reconnect -------------------------------------------------

my ($topo, $old, $new, $worker) = failover_unheard('reconnect', '');

my @on_old = $topo->clients_of($old, $worker);
my ($subscriber) = grep { $_->{sub} } @on_old;
ok(@on_old >= 2 && $subscriber, 'nginx is still on the old master, its '
    . 'command connection and subscriber among them');
unlike(slurp(nginx_error_log()), qr/failover: unheard|moved from/,
    'nginx heard of no failover');

redis_cmd_at($old, 'CLIENT', 'KILL', 'ID', $subscriber->{id});
ok(wait_until(sub { grep { $_->{sub} } $topo->clients_of($new, $worker) },
    scaled(10), 'the subscriber on the new master'), 'the subscriber, '
    . 'killed, asks the sentinels and reconnects to the new master');
ok(wait_until(sub { !$topo->clients_of($old, $worker) }, scaled(5),
    'nginx off the old master'), 'the answer moves every connection off '
    . 'the old master, the command connection too')
    or diag(explain [ map { "$_->{addr} $_->{cmd}" }
        $topo->clients_of($old, $worker) ]);
like(slurp(nginx_error_log()),
    qr/master moved from 127\.0\.0\.1:$old to 127\.0\.0\.1:$new unheard/,
    '... and says so');

my $r;
ok(wait_until(sub {
    $r = post_json('/async/', { unheard => 1 }, 3);
    $r->{status} == 202;
}, scaled(10), 'an async job accepted'), 'an async job is accepted')
    or diag($r->{content}, map { "redis $_: " . explain(eval { [
        redis_cmd_at($_, 'ROLE')->[0],
        redis_cmd_at($_, 'EXISTS', 'offload:{echo}:jobs') ] }) }
        $topo->redis_ports);
my $id = $r->{json}{id} // '';
ok(redis_cmd_at($new, 'EXISTS', record_key($id)), "job $id is on the new "
    . 'master');
ok(!redis_cmd_at($old, 'EXISTS', record_key($id)), '... not the old one');
stop_stack($topo);

# ---- asked for the count --------------------------------------------------

# the worker's query connection: the one to a sentinel not subscribed
sub query_sentinel {
    my ($topo, $worker) = @_;
    my @q = map { my $s = $_; map { [ $s, $_ ] } grep { !$_->{psub} }
        $topo->clients_of($s, $worker) } $topo->sentinel_ports;
    return @q == 1 ? @{ $q[0] } : ();
}

($topo, $old, $new, $worker) = failover_unheard('count',
    ' wait_replicas=all', sub {
    my ($topo, $worker, $watched) = @_;
    # the count asked of the sentinel that forgets the master is refused,
    # and the last count stands: the query connection goes to another
    # (killed, it moves on to the next sentinel, and the count's tick
    # connects it again)
    my ($s, $query);
    ok(wait_until(sub {
        ($s, $query) = query_sentinel($topo, $worker);
        return 0 unless $s;
        return 1 if $s != $watched;
        $topo->sentinel_cmd($s, 'CLIENT', 'KILL', 'ID', $query->{id});
        0;
    }, scaled(10), 'the query connection on a sentinel not watched'),
        'count: nginx counts replicas on sentinel ' . ($s // '-')
        . ', not the one it watches');
});
# the query sentinel may have switched before the two agreed, and nginx's
# count of it moved nginx already: what follows holds either way
diag('count: nginx is ' . ($topo->clients_of($old, $worker) ? 'still on'
    : 'already off') . ' the old master before the jobs');

# async jobs until nginx is off the old master: each one answered 202 is
# on the new master
my (@accepted, %status);
my $n = 0;
my $moved = wait_until(sub {
    my $r = post_json('/async/', { count => ++$n }, 3);
    $status{ $r->{status} }++;
    push @accepted, $r->{json}{id} // '' if $r->{status} == 202;
    !$topo->clients_of($old, $worker);
}, scaled(10), 'nginx off the old master');
ok($moved, 'count: the count of another master moves every connection '
    . 'off the old master');
my $says = "counts the replicas of master 127.0.0.1:$new, not "
    . "127.0.0.1:$old: a failover unheard";
ok(index(slurp(nginx_error_log()), $says) >= 0, '... and says so');
ok(wait_until(sub {
    my $r = post_json('/async/', { count => ++$n }, 3);
    $status{ $r->{status} }++;
    push @accepted, $r->{json}{id} // '' if $r->{status} == 202;
    $r->{status} == 202;
}, scaled(10), 'an async job accepted'), 'count: an async job is accepted '
    . '(WAIT 0: the new master has no replica up)');
my @lost = grep { !redis_cmd_at($new, 'EXISTS', record_key($_)) } @accepted;
is(scalar @lost, 0, sprintf 'count: each async job answered 202 is on '
    . 'the new master (%d accepted; answers: %s)', scalar @accepted,
    join ', ', map { "$_ x$status{$_}" } sort keys %status)
    or diag("not there: @lost[0 .. 4]");

finish();
