#!/usr/bin/perl
# A Redis Cluster whose CLUSTER SLOTS names its nodes by something else
# than a numeric address (cluster-preferred-endpoint-type hostname, no
# hostname announced: "?"): nginx never resolves a name in a worker, so the
# map is not used; the error log says which slots, which endpoint and why,
# and jobs are answered 503 (never a hang).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3,
    args => [ '--cluster-preferred-endpoint-type', 'hostname' ]);
my $slots = $cl->cmd(($cl->master_ports)[0], 'CLUSTER', 'SLOTS');
is(ref $slots eq 'ARRAY' ? $slots->[0][2][0] : '', '?',
    'the cluster names its nodes "?"');

start_nginx(workers => 1, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
}
HTTP
ok(wait_until(sub {
    slurp(nginx_error_log())
        =~ /master of slots \d+-\d+ "\?", which is not a numeric address/
}, scaled(10), 'the reason logged'), 'the error log says which endpoint '
    . 'made the map unusable, and why')
    or diag(slurp(nginx_error_log()));
my $r = http('POST', '/jobs/q0', '{}', undef, scaled(10));
is($r->{status}, 503, 'a job is answered 503');
is($r->{json}{error}{code}, 'redis_unavailable', 'redis_unavailable');

done_testing();
