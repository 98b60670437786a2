#!/usr/bin/perl
# A queue whose every pool failed (restart intensity exceeded, its workers
# gone for restart_cooldown) is answered 503 no_workers at once, as a
# stopped or drained node's, not queued to wait out offload_timeout for a
# 504; its other queues answer on, and once the cooldown ends so does it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue crash {
    handler crash; workers 1; max_attempts 1;
    max_restarts 1 60s; restart_cooldown 20s; restart_backoff 10ms 10ms;
}
CONF
ok(start_jobs_nginx(server => 'offload_timeout 8s;'), 'stack ready');

sub pool { my $doc = node_doc() or return {}; $doc->{queues}{$_[0]} || {} }

for my $n (1 .. 2) {
    is(post_json('/jobs/crash', { n => $n })->{status}, 502,
        "crash $n: 502 worker_crashed");
}
ok(wait_until(sub { (pool('crash')->{state} // '') eq 'failed' }, scaled(5),
    'pool failed'), 'the crash pool failed (max_restarts 1)');

# nginx reads the registry each second: until it has, a job is queued (a
# short deadline of its own ends it 504)
ok(wait_until(sub {
    http('POST', '/jobs/crash', '{"n":3}', { 'X-Offload-Timeout' => '0.3' })
        ->{status} == 503;
}, scaled(5), 'nginx sees the failure'), 'nginx sees the pool failed');
my $queued = redis_cmd('XLEN', 'offload:{crash}:jobs');
my $t0 = time;
my $r = post_json('/jobs/crash', { n => 4 }, scaled(15));
my $took = time - $t0;
is($r->{status}, 503, 'a job then: 503') or diag("$r->{status} $r->{content}");
is(($r->{json} || {})->{error}{code}, 'no_workers', 'no_workers');
like(($r->{json} || {})->{error}{message} // '', qr/pools failed/,
    'saying its pools may have failed');
is($r->{headers}{'retry-after'}, 5, 'Retry-After: 5');
ok($took < scaled(2), sprintf('at once (%.2f s), not at offload_timeout',
    $took));
is(redis_cmd('XLEN', 'offload:{crash}:jobs'), $queued, 'nothing queued');
is(post_json('/jobs/echo', { still => 1 })->{status}, 200,
    'the other queue answers on');

# offloadctl top: the down slot has no pid, "-" (it printed -1: a script
# that kills by that column would send kill -1, every process it may)
my $top = `${\ build_path('offloadctl')} -r 127.0.0.1:${\ redis_port()} top -b`;
my ($down) = $top =~ /^(\S+ +crash +0 .*)$/m;
like($down // '', qr/^\S+ +crash +0 +- +down +- +- +- +- /,
    'offloadctl top: the down slot\'s pid, fds and held are "-"')
    or diag($top);
unlike($top, qr/(?<!\S)-1(?!\S)/, 'no -1 anywhere');

# the cooldown over, its workers back: jobs go in again
ok(wait_until(sub { (pool('crash')->{state} // '') eq 'ok' }, scaled(30),
    'pool back'), 'the pool is back after its cooldown');
ok(wait_until(sub { post_json('/jobs/crash', { n => 5 })->{status} == 502 },
    scaled(5), 'taken again'), 'its jobs are taken again (and crash)');

finish();
