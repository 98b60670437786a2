#!/usr/bin/perl
# Queues sharded over two Redis servers (offload_redis per location, a
# sidecar on each): offload_status, offload_metrics and the dashboard show
# the nodes, queues and workers of both, each tagged with its Redis, and
# each Redis is read at most once per interval.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $pa = start_redis();
start_sidecar(conf => "queue alpha { handler echo; workers 2; }\n");

# the second Redis and its sidecar, with a queue of its own
my $dir = tmpdir();
my $pb = free_port();
mkdir "$dir/b";
spawn('redis-b', "$dir/b/redis.log", {}, 'redis-server', '--port', $pb,
    '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', "$dir/b", '--daemonize', 'no');

sub redis_b { my $v = `redis-cli -p $pb @_ 2>/dev/null`; chomp $v; $v }

ok(wait_until(sub { redis_b('PING') eq 'PONG' }, scaled(10),
    'second redis-server'), 'second Redis up');
my $node_b = "t$$-b";
spew("$dir/b/sidecar.conf", <<"CONF");
redis 127.0.0.1:$pb;
node_name $node_b;
log $dir/b/sidecar.log info;
heartbeat 200ms;
queue beta { handler echo; workers 1; }
CONF
spawn('sidecar-b', "$dir/b/sidecar.stderr", {},
    build_path('offload-sidecar'), '-c', "$dir/b/sidecar.conf");
ok(wait_until(sub { redis_b('GET', "offload:{ctl}:node:$node_b") =~ /"beta"/ },
    scaled(15), 'second sidecar registered'), 'second sidecar up');

start_nginx(workers => 2, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    location = /a/alpha { offload_redis 127.0.0.1:$pa; offload_pass alpha; }
    location = /b/beta { offload_redis 127.0.0.1:$pb; offload_pass beta; }
    location = /status { offload_redis 127.0.0.1:$pa; offload_status; }
    location = /metrics { offload_redis 127.0.0.1:$pa; offload_metrics; }
    location = /dash { offload_redis 127.0.0.1:$pa; offload_dashboard; }
}
HTTP
ok(wait_until(sub { (post_json('/a/alpha', '{}')->{status} // 0) == 200
                    && (post_json('/b/beta', '{}')->{status} // 0) == 200 },
    scaled(15), 'both shards answer'), 'jobs through both Redis servers');

my $s;
ok(wait_until(sub {
    $s = http('GET', '/status')->{json} || {};
    ($s->{redis} // '') eq 'ok' && $s->{queues}{alpha} && $s->{queues}{beta};
}, scaled(10), 'both in the status'), 'status lists both queues');
is(scalar @{ $s->{redises} }, 2, 'two Redis servers read');
is_deeply([ sort map { $_->{state} } @{ $s->{redises} } ], [ 'ok', 'ok' ],
    'both read');
my %node_redis = map { $_->{node} => $_->{redis} } @{ $s->{nodes} };
is($node_redis{ node_name() }, "127.0.0.1:$pa", 'node a, tagged Redis a');
is($node_redis{$node_b}, "127.0.0.1:$pb", 'node b, tagged Redis b');
is($s->{queues}{alpha}{redis}, "127.0.0.1:$pa", 'queue alpha on Redis a');
is($s->{queues}{beta}{redis}, "127.0.0.1:$pb", 'queue beta on Redis b');
is($s->{workers_total}, 3, 'three workers in all');
my @by = map { "$_->{redis} $_->{queue}" } @{ $s->{workers} };
is_deeply(\@by, [ ("127.0.0.1:$pa alpha") x 2, "127.0.0.1:$pb beta" ],
    'workers of both, tagged');
my $top = http('GET', '/status?sort=jobs&limit=1')->{json};
is(scalar @{ $top->{workers} }, 1, 'limit over both');
is(http('GET', '/dash?status')->{json}{queues}{beta}{workers}, 1,
    'the dashboard reads both');

# a queue's backlog is known from its node's second heartbeat on, and the
# answer is cached for a second: wait for it rather than read it once
my $m;
wait_until(sub {
    $m = http('GET', '/metrics')->{content};
    $m =~ /^offload_queue_backlog\{redis="127\.0\.0\.1:$pb",queue="beta"\}/m
}, scaled(10), 'queue beta\'s backlog in the metrics');
like($m, qr/^offload_redis_up\{redis="127\.0\.0\.1:$pa"\} 1$/m,
    'metrics: Redis a up');
like($m, qr/^offload_redis_up\{redis="127\.0\.0\.1:$pb"\} 1$/m,
    'metrics: Redis b up');
my $node_a = node_name();
like($m, qr/^offload_node_up\{redis="127\.0\.0\.1:$pa",
            node="\Q$node_a\E"\}\ 1$/mx, 'metrics: node a');
like($m, qr/^offload_node_up\{redis="127\.0\.0\.1:$pb",
            node="\Q$node_b\E"\}\ 1$/mx, 'metrics: node b');
like($m, qr/^offload_queue_backlog\{redis="127\.0\.0\.1:$pb",
            queue="beta"\}\ \d+$/mx, 'metrics: queue beta');
is(scalar(() = $m =~ /^# TYPE offload_node_up /mg), 1,
    'one family of each name');
spew("$dir/metrics.txt", $m);
my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);

# each Redis read at most once a second under polling
my $calls = sub {
    my ($info) = @_;
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_(?:evalsha_ro|eval_ro):calls=(\d+)/mg;
    return $n;
};
# the admission script runs each second per worker too: count it apart
my $before_b = $calls->(scalar `redis-cli -p $pb INFO commandstats`);
my $t0 = time;
my $n = 0;
while (time - $t0 < 3) {
    http('GET', $n % 2 ? '/status' : '/metrics');
    $n++;
}
my $runs = $calls->(scalar `redis-cli -p $pb INFO commandstats`)
    - $before_b;
diag("$n requests in about 3 s: $runs scripts on Redis b");
ok($runs <= (time - $t0 + 2) * 3,
    "Redis b: $runs scripts for $n status reads (status and admission)");
ok($n > 3 * $runs, 'far fewer than one per request');

stop_proc('sidecar-b', scaled(20));
stop_proc('redis-b', 10);
done_testing();
