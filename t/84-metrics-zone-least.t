#!/usr/bin/perl
# The least offload_metrics_zone nginx -t takes holds what the zone needs
# before any queue and one queue's counters: a queue is counted under its
# own name.  (Before, 8 memory pages were taken, nginx -t printed
# "[crit] ngx_slab_alloc() failed: no memory" and passed, and every queue
# was counted as "_other".)  A size it cannot parse is said to be one.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $server = "server {\n    listen 127.0.0.1:1;\n"
    . "    location /a { offload_pass a; }\n}\n";
my ($rc, $out) = nginx_test(http => "offload_metrics_zone 1k;\n$server");
isnt($rc, 0, 'offload_metrics_zone 1k: refused');
my ($least) = $out =~ /offload_metrics_zone size "1k", it must be at least (\d+) \(\d+k\): room for one queue's counters/;
ok($least, 'saying the least size and why') or diag($out);

($rc, $out) = nginx_test(http => "offload_metrics_zone 1g;\n$server");
like($out, qr/invalid offload_metrics_zone size "1g": a number of bytes, with k or m/,
    'offload_metrics_zone 1g: said to be no size nginx reads')
    or diag($out);

($rc, $out) = nginx_test(http => 'offload_metrics_zone ' . ($least - 1)
    . ";\n$server");
isnt($rc, 0, 'one byte less: refused');
($rc, $out) = nginx_test(http => "offload_metrics_zone $least;\n$server");
is($rc, 0, "offload_metrics_zone $least: taken") or diag($out);
unlike($out, qr/\[crit\]|no memory/, '... with room for what the zone holds')
    or diag($out);

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(http => "offload_metrics_zone $least;",
    server => 'location = /metrics { offload_metrics; }'), 'stack ready');
is(post_json('/jobs/echo', { i => $_ })->{status}, 200, "job $_")
    for 1 .. 3;
my $metrics = http('GET', '/metrics')->{content};
like($metrics, qr/^offload_requests_total\{queue="echo",status="200"\} [3-9]/m,
    'the queue is counted under its own name');
unlike(slurp(nginx_error_log()), qr/\[crit\]/, 'no [crit] in the error log');

finish();
