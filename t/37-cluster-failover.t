#!/usr/bin/perl
# nginx on a Redis Cluster whose master dies: three masters with a replica
# each; the master of a queue's slot is killed (SIGKILL), the cluster
# promotes its replica, and nginx, whose connections to the dead master
# fail, asks the seeds for the slot map again and sends the queue's jobs
# to the new master: 503 meanwhile (never a hang), every worker on the new
# master within a second of the promotion, then every job answered 200
# with its own result.  The sidecar (redis cluster://seeds) finds the new
# master on its own.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3, replicas => 1,
    node_timeout => 1000);
my @masters = $cl->master_ports;
my $ctl = $cl->owner_port('ctl');
my ($doomed) = grep { $_ != $ctl } @masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($doomed);
ok($qa && $qb, "queue $qa on the control shard ($ctl), $qb on $doomed");
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $qa => 1, $qb => 2 },
    conf => "queue $qa { handler echo; }\n"
        . "queue $qb { handler echo; workers 2; }\n");

start_nginx(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
}
HTTP
ok(wait_nginx_ready("/jobs/$qb", '{}'), "nginx answers on $qb");

my $slot = $cl->slot_of($qb);
my $t0 = time;
$cl->kill_node($doomed);
my $new = $cl->wait_owner_change($slot, $doomed, scaled(30));
ok($new, "master $doomed killed, its replica took over: "
    . ($new // 'none'));
my $t1 = time;

# meanwhile a job is answered, never left hanging: 503 while this worker
# knows no live master, 200 once it and the sidecar are on the new one, or
# 504 at the client's deadline in between
my $r = http('POST', "/jobs/$qb", '{"during":1}',
    { 'X-Offload-Timeout' => 2 }, scaled(10));
ok(($r->{status} == 503 || $r->{status} == 504 || $r->{status} == 200)
    && $r->{ms} < 3000,
    sprintf("a job to $qb meanwhile: %d in %.0f ms", $r->{status},
        $r->{ms}));

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

done_testing();
