#!/usr/bin/perl
# A job's last look at its result key, in a slot whose migration is half
# set up (MIGRATING on the old master, the new one not IMPORTING): the old
# master answers ASK, the new one MOVED back, and the look spends its
# redirects.  Redis never said whether a result is stored: the job is
# answered 503 with Retry-After, never 504 "no result in time" as if
# nothing were there.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
my $ctl = $cl->owner_port('ctl');
my ($from, $to) = grep { $_ != $ctl } @masters;
my $qa = $cl->queue_on($ctl);
my $qp = $cl->queue_on($from, map { "p$_" } 0 .. 99);
ok($qa && $qp, "queue $qa on $ctl, $qp on $from");
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $qa => 1 },
    conf => "queue $qa { handler echo; }\n");
start_nginx(level => 'info', workers => 1, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location = /parked { offload_pass $qp; offload_timeout 3s; }
}
HTTP
ok(wait_nginx_ready("/jobs/$qa", '{}', 1), "nginx answers on $qa");

is($cl->cmd($from, 'XGROUP', 'CREATE', "offload:{$qp}:jobs", 'workers',
    '$', 'MKSTREAM'), 'OK', "$qp\'s stream, which no worker reads");
my $s = send_post('/parked', '{}');
my $e;
ok(wait_until(sub {
    my $x = $cl->cmd($from, 'XRANGE', "offload:{$qp}:jobs", '-', '+');
    $e = { @{ $x->[0][1] } } if ref $x eq 'ARRAY' && @$x;
    $e;
}, scaled(10), 'the parked job'), "a job on $qp, nobody to run it");

my $slot = $cl->slot_of($qp);
$cl->ok_cmd($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING',
    $cl->node_id($to));
my $probe = $cl->cmd($from, 'GET', "offload:{$qp}:result:$e->{id}");
is(ref $probe eq 'HASH' ? $probe->{error} : $probe, "ASK $slot 127.0.0.1:$to",
    "$from answers ASK for the result key");

my $raw = OffloadTest::read_raw($s, scaled(30));
like($raw, qr{^HTTP/1\.1 503 }, 'the job answered 503 at its last look, '
    . 'not 504') or diag($raw);
like($raw, qr/"code":"redis_unavailable"/, 'redis_unavailable');
like($raw, qr/\r\nRetry-After: 1\r\n/i, 'Retry-After: 1');
my $log = slurp(nginx_error_log());
like($log, qr/job $e->{id}: ASK $slot \S+:$to, sent to /,
    'its look followed ASK');
like($log, qr/job $e->{id}: its result could not be read: (ASK|MOVED) /,
    'the error log says why');

done_testing();
