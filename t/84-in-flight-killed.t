#!/usr/bin/perl
# An nginx worker SIGKILLed (the OOM killer, an operator, a crash) with
# requests in flight: its share of offload_requests_in_flight is taken off
# by the worker nginx starts in its place, which says so.  (Before: the
# gauge is one atomic per queue in the shared zone, and the dead worker's
# requests stayed in it for as long as nginx ran, reloads too; found by a
# probe that reconciled the metrics with what happened.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => "queue sleep { handler sleep; workers 4; }\n"
    . "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(workers => 1,
    server => "    location = /metrics { offload_metrics; }\n"),
    'stack ready');

sub in_flight {
    my $m = http('GET', '/metrics')->{content} // '';
    return $m =~ /^offload_requests_in_flight\{queue="sleep"\} (\d+)$/m
        ? $1 : undef;
}

my @s = map { send_post('/jobs/sleep', '{"ms":' . scaled(8000) . '}') } 1 .. 4;
ok(wait_until(sub { (in_flight() // 0) == 4 }, scaled(10), '4 in flight'),
    '4 sleep jobs in flight');
my ($worker) = nginx_worker_pids();
ok(kill('KILL', $worker), "the nginx worker ($worker) SIGKILLed");
ok(wait_until(sub { my ($w) = nginx_worker_pids();
        $w && $w != $worker && defined in_flight() }, scaled(10),
    'a new worker'), 'nginx starts another worker');
is(in_flight(), 0, 'in flight: 0, the dead worker\'s 4 taken off');
like(slurp(nginx_error_log()), qr/offload: 4 requests in flight of worker (?:process )?$worker taken off the gauges/,
    '... and said so');
close $_ for @s;

# the gauge counts on
my $s = send_post('/jobs/sleep', '{"ms":' . scaled(1500) . '}');
ok(wait_until(sub { (in_flight() // 0) == 1 }, scaled(10), '1 in flight'),
    'a new job: 1 in flight');
like(read_answer($s)->{status}, qr/^200$/, 'it is answered');
is(in_flight(), 0, 'then 0');

# the one alert this test makes: nginx's own line for the worker it killed
# (finish() fails on any other)
my $log = nginx_error_log();
spew($log, join '', grep { !/worker process $worker exited on signal 9$/ }
    split /^/m, slurp($log));

finish();
