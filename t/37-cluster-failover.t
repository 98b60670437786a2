#!/usr/bin/perl
# nginx on a Redis Cluster whose master dies: three masters with a replica
# each; the master of a queue's slot is killed (SIGKILL), the cluster
# promotes its replica, and nginx, whose connections to the dead master
# fail, asks the seeds for the slot map again and sends the queue's jobs
# to the new master: 503 meanwhile (never a hang), every worker on the new
# master within a second of the promotion, then every job answered 200
# with its own result.  The sidecar (redis cluster://seeds) finds the new
# master on its own.  Jobs already running when the master dies (replicated
# to its replica first) are answered 200 with their own results too: nginx
# looks for them on the promoted replica, not through the dead master's
# links.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3, replicas => 1);
my $ctl = $cl->control_port;
my ($doomed) = $cl->other_masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($doomed);
my $qs = $cl->queue_on($doomed, map { "s$_" } 0 .. 99);
ok($qa && $qb && $qs, "queue $qa on the control shard ($ctl), $qb and $qs "
    . "on $doomed");

ok($cl->start_offload(echo => [ $qa ],
    conf => "queue $qb { handler echo; workers 2; }\n"
        . "queue $qs { handler sleep; workers 3; }\n",
    ready => [ "/jobs/$qb", '{}' ], server => <<'LOCATIONS'),
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
LOCATIONS
    "nginx answers on $qb");

ok(wait_nginx_ready("/jobs/$qs", '{"ms":1}'), "nginx answers on $qs");

# slow jobs running when the master dies: in the workers' hands and on the
# replica before the kill (its offset past the master's, asked of the
# master: a WAIT on a connection of its own would answer at once, having
# written nothing)
my @ms = (2000, 3000, 4000);
my @slow = map { send_post("/jobs/$qs", qq({"ms":$_})) } @ms;
ok(wait_until(sub {
    my $p = $cl->cmd($doomed, 'XPENDING', "offload:{$qs}:jobs", 'workers');
    ref $p eq 'ARRAY' && $p->[0] == @ms
}, scaled(10), 'the slow jobs running'), 'the slow jobs are running');
ok(wait_replicated($doomed, 1, scaled(5)), 'and replicated');
my @ids = map { my %f = @{ $_->[1] }; $f{id} }
    @{ $cl->cmd($doomed, 'XRANGE', "offload:{$qs}:jobs", '-', '+') };

# nginx's workers frozen while the master dies and the jobs end on the new
# one: their results are published before nginx subscribes there, so only
# its looks at their result keys on the new master find them
my @frozen = nginx_worker_pids();
kill 'STOP', @frozen;
my $slot = $cl->slot_of($qb);
my $t0 = time;
$cl->kill_node($doomed);
my $new = $cl->wait_owner_change($slot, $doomed, scaled(30));
ok($new, "master $doomed killed, its replica took over: "
    . ($new // 'none'));
my $t1 = time;
ok($new && wait_until(sub {
    !grep { !$cl->cmd($new, 'EXISTS', "offload:{$qs}:result:$_") } @ids
}, scaled(30), 'the slow jobs ended'), 'the slow jobs ended on the new '
    . 'master, with nginx not listening');
kill 'CONT', @frozen;

# meanwhile a job is answered, never left hanging: 503 while this worker
# knows no live master, else 200 with its own result once the sidecar is on
# the new one (well within its deadline: never 504)
my $r = http('POST', "/jobs/$qb", '{"during":1}',
    { 'X-Offload-Timeout' => 15 }, scaled(20));
ok(($r->{status} == 503
        || ($r->{status} == 200 && ($r->{json}{during} // 0) == 1))
    && $r->{ms} < 15000,
    sprintf("a job to $qb meanwhile: %d in %.0f ms", $r->{status},
        $r->{ms}));

# the jobs that were running: each its own result, from the new master
for my $i (0 .. $#ms) {
    my $a = read_answer($slow[$i], scaled(30));
    my $got = $a->{json}{ms} // 0;
    ok($a->{status} == 200 && $got >= $ms[$i] && $got < $ms[$i] + 1000,
        "slow job $i ($ms[$i] ms) running at the kill: $a->{status} "
        . ($a->{content} // ''));
}

# each nginx worker learns the new master from the seeds on its own
my %learned;
ok(wait_until(sub {
    %learned = map { $_ => 1 } slurp(nginx_error_log())
        =~ /(\d+)#\d+: offload: redis \S+: master 127\.0\.0\.1:$new\b/g;
    keys %learned == 2;
}, scaled(10), 'both nginx workers learn the new master'),
    'both nginx workers learned the new master from the seeds');
diag(sprintf('promoted %.2f s after the kill; both workers knew it %.2f s '
    . 'later', $t1 - $t0, time - $t1));

ok(wait_until(sub {
    http('POST', "/jobs/$qb", '{}', { 'X-Offload-Timeout' => 2 })->{status}
        == 200
}, scaled(20), 'the sidecar on the new master'), "$qb served again");
my $ok = 0;
for my $i (1 .. 20) {
    my $a = http('POST', "/jobs/$qb", qq({"i":$i}));
    if ($a->{status} == 200 && ($a->{json}{i} // 0) == $i) {
        $ok++;
    } else {
        diag("job $i: $a->{status} " . ($a->{content} // ''));
    }
}
is($ok, 20, '20 jobs answered 200, each its own result');

# the dead master, which no map names any more and no request uses, is let
# go by each worker: no more connections tried to it, no maps asked for
# because of it
my %retired;
ok(wait_until(sub {
    %retired = map { $_ => 1 } slurp(nginx_error_log())
        =~ /(\d+)#\d+: offload: redis \S+: master \S+:$doomed left the map/g;
    keys %retired == 2;
}, scaled(20), 'both workers let the dead master go'),
    "both nginx workers closed the dead master $doomed");
sub tries_dead {
    my @n = slurp(nginx_error_log())
        =~ /offload: redis 127\.0\.0\.1:$doomed \w+ connection failed/g;
    return scalar @n;
}
my $tries = tries_dead();
sleep 3;
is(tries_dead(), $tries, 'and tried no connection to it in 3 s');

done_testing();
