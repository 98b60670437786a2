#!/usr/bin/perl
# A real Prometheus server (Debian's prometheus) scrapes offload_metrics on
# loopback; its HTTP API then answers a query for an offload series, from
# nginx's zone (queue label) and from a sidecar node (node label).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use OffloadTest;

my $prometheus = '/usr/bin/prometheus';
plan skip_all => 'prometheus is not installed' unless -x $prometheus;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(server => 'location = /metrics { offload_metrics; }'),
    'stack ready');
post_json('/jobs/echo', { i => $_ }) for 1 .. 5;

my $dir = tmpdir();
my $port = free_port();
my $nginx = nginx_port();
spew("$dir/prometheus.yml", <<"YML");
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: offload
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$nginx']
YML

spawn('prometheus', "$dir/prometheus.log", {}, $prometheus,
    "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/tsdb",
    "--web.listen-address=127.0.0.1:$port");

my $ua = HTTP::Tiny->new(timeout => 5);

sub query {
    my ($q) = @_;
    my $r = $ua->get("http://127.0.0.1:$port/api/v1/query?query="
        . $ua->www_form_urlencode({ q => $q }) =~ s/^q=//r);
    my $j = json_decode($r->{content} // '') or return [];
    return ($j->{status} // '') eq 'success' ? $j->{data}{result} : [];
}

my $series;
ok(wait_until(sub {
    die "prometheus exited\n" unless alive('prometheus');
    $series = query('offload_requests_total{queue="echo",status="200"}');
    @$series && $series->[0]{value}[1] >= 5;
}, scaled(30), 'prometheus scraped offload_requests_total'),
    'Prometheus has offload_requests_total for queue echo')
    or diag(slurp("$dir/prometheus.log"));

my $up = query('up{job="offload"}');
is($up->[0]{value}[1], '1', 'the scrape target is up');

my $node = node_name();
my $rss = query("offload_worker_rss_bytes{node=\"$node\",queue=\"echo\"}");
ok(@$rss && $rss->[0]{value}[1] > 0, 'a sidecar worker\'s RSS, by node');

my $p99 = query('histogram_quantile(0.99, '
    . 'sum by (le) (offload_request_seconds_bucket{queue="echo"}))');
ok(@$p99 && $p99->[0]{value}[1] > 0,
    'histogram_quantile over offload_request_seconds works')
    or diag(explain($p99));

stop_proc('prometheus', 10);
done_testing();
