#!/usr/bin/perl
# wait_replicas on a Redis Cluster (two masters, a replica each).  nginx
# sends WAIT after a job's XADD on the command link of the master that took
# it, so an async job is accepted (202) only once that master's replica has
# its entry and record: with the replica frozen (SIGSTOP) it is 503
# not_replicated after wait_timeout (202 without wait_replicas, and 202 on
# the other master, whose replica runs: the WAIT is per master);
# wait_replicas=all waits for the replicas the slot map lists for the
# master.  Once the replica runs again, the job's record is on it when the
# 202 comes.  Killed, the cluster flags it failed and drops it from the
# map: wait_replicas=all then accepts with WAIT 0, wait_replicas=1
# refuses.  The sidecar (redis cluster://... wait_replicas=1) WAITs after
# its completions on its link to the queue's master: with that master's
# replica frozen the WAIT falls short and the worker says so.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

# a node timeout well above the freeze: the frozen replica is never
# flagged failed (and so left out of CLUSTER SLOTS) meanwhile
my $cl = start_cluster_topology(masters => 2, replicas => 1,
    node_timeout => 4000);
my $ctl = $cl->owner_port('ctl');
my ($far) = grep { $_ != $ctl } $cl->master_ports;
my $qa = $cl->queue_on($far);
my $qc = $cl->queue_on($ctl);
my $replica = $cl->replica_of($far);
ok($qa && $qc && $replica, "queue $qa on $far (replica $replica), $qc on "
    . "the control shard's master $ctl");
redis_use($ctl);

start_sidecar(redis => $cl->url . ' wait_replicas=1',
    want => { $qa => 1, $qc => 1 },
    conf => "redis_timeout 1s;\nqueue $qa { handler echo; }\n"
        . "queue $qc { handler echo; }\n");

# CLUSTER SLOTS lists a replica once the nodes heard (gossip) that it
# applied a write of its master (the sidecar's streams are those): only
# then does wait_replicas=all wait for it
ok(wait_until(sub {
    !grep {
        my $map = $cl->cmd($_, 'CLUSTER', 'SLOTS');
        ref $map ne 'ARRAY' || grep { @$_ != 4 } @$map
    } $cl->master_ports
}, scaled(20), 'the replicas in the slot map'),
    'every master\'s replica is in the slot map');

my $url = $cl->url;
start_nginx(level => 'notice', http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis $url;
    location ~ ^/sync/([^/]+)\$ {
        offload_redis $url wait_replicas=1 wait_timeout=500ms;
        offload_pass \$1;
    }
    location ~ ^/async/([^/]+)\$ {
        offload_redis $url wait_replicas=1 wait_timeout=500ms;
        offload_pass \$1;
        offload_mode async;
    }
    location ~ ^/all/([^/]+)\$ {
        offload_redis $url wait_replicas=all wait_timeout=500ms;
        offload_pass \$1;
        offload_mode async;
    }
    location ~ ^/plain/([^/]+)\$ { offload_pass \$1; offload_mode async; }
}
HTTP
ok(wait_nginx_ready("/sync/$qa", '{}'),
    'nginx -t took wait_replicas with cluster://, and jobs are answered');

# Whether the job's record is on the replica now (a replica answers reads
# only after READONLY, or redirects them to its master).
sub record_on_replica {
    my ($id) = @_;
    redis_use($replica);
    my (undef, $q) = redis_cmds(['READONLY'],
        ['HGET', record_key($id), 'queue']);
    redis_use($ctl);
    return ($q // '') eq $qa;
}

# ---- the replica runs: accepted, and already on the replica -------------

for my $loc (qw(async all)) {
    my $r;
    ok(wait_until(sub {
        $r = post_json("/$loc/$qa", { loc => $loc });
        $r->{status} == 202
    }, scaled(10), "/$loc/$qa: 202"), "wait_replicas on /$loc/: 202");
    my $id = $r->{json}{id} // '';
    ok(record_on_replica($id),
        "/$loc/: job ${id}'s record is on the replica at the 202");
}
like(slurp(nginx_error_log()),
    qr/wait_replicas=all: master 127\.0\.0\.1:$far has 1 replicas in the/,
    'wait_replicas=all: the master\'s replica counted from the slot map')
    or diag(join "\n", grep { /wait_replicas|slot map/ }
        split /\n/, slurp(nginx_error_log()));
my $r = post_json("/sync/$qa", { sync => 1 });
is($r->{status}, 200, 'wait_replicas=1, sync job: 200');
is_deeply($r->{json}, { sync => 1 }, '... with its result');

# ---- the replica frozen: nothing accepted on its master ----------------

my $log = tmpdir() . '/sidecar.log';
my $logged = -s $log // 0;
kill 'STOP', proc_pid("cluster-$replica");
for my $loc (qw(async all)) {
    my $t0 = time;
    $r = post_json("/$loc/$qa", { frozen => $loc }, scaled(10));
    my $took = time - $t0;
    is($r->{status}, 503, "/$loc/$qa, replica frozen: 503");
    is($r->{json}{error}{code}, 'not_replicated', '... not_replicated')
        or diag($r->{content});
    ok($took >= 0.45 && $took < scaled(3),
        sprintf('... after the 500ms WAIT timeout (%.2f s)', $took));
}
is(post_json("/plain/$qa", { plain => 1 })->{status}, 202,
    'without wait_replicas: 202 with the replica frozen');
is(post_json("/async/$qc", { other => 1 })->{status}, 202,
    "the other master's queue $qc (its replica running): 202");
ok(wait_until(sub {
    substr(slurp($log), $logged) =~ /$qa\S*: WAIT: 0 of 1 replicas/
}, scaled(10), 'the worker WAITed'), 'the sidecar WAITs on the queue\'s '
    . 'master after a completion: 0 of 1 replicas with it frozen');
kill 'CONT', proc_pid("cluster-$replica");

# ---- and back ----------------------------------------------------------

ok(wait_until(sub { post_json("/async/$qa", {})->{status} == 202 },
    scaled(10), 'replicated again'), '202 again once the replica runs');
# ---- the replica dead: "all" follows the map, "1" still wants one -------

$cl->kill_node($replica);
my $t0 = time;
# every nginx worker counts on its own: the next POST may go to any
my @nginx_workers = nginx_worker_pids();
my $none = qr/wait_replicas=all: master 127\.0\.0\.1:$far has 0 replicas/;
ok(wait_until(sub {
    my $log = slurp(nginx_error_log());
    !grep { $log !~ /\b$_#\d+: [^\n]*$none/ } @nginx_workers;
}, scaled(20), 'the dead replica left out of every worker\'s map'),
    'wait_replicas=all: the replica dead, the map counts none');
diag(sprintf('replica flagged failed and out of the map %.1f s after its '
    . 'SIGKILL', time - $t0));
is(post_json("/all/$qa", { dead => 1 })->{status}, 202,
    'wait_replicas=all: 202 with no replica left (WAIT 0)');
$r = post_json("/async/$qa", { dead => 1 }, scaled(10));
is($r->{status} . ' ' . ($r->{json}{error}{code} // ''),
    '503 not_replicated', 'wait_replicas=1: 503 not_replicated');

unlike(slurp(nginx_error_log()), qr/\[(?:alert|crit|emerg)\]/,
    'no alert in the nginx error log');

done_testing();
