#!/usr/bin/perl
# While a reload rolls, a slot it has not reached yet is served by its
# worker of the previous configuration: the registry (offload_status,
# offloadctl top) shows that worker, marked retiring, not a slot "down"
# with no pid (an operator read a whole queue as down while it answered).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
# sleep first: the rolling reaches echo once sleep's worker has finished
# its job
start_sidecar(conf => <<'CONF');
shutdown_timeout 10s;
queue sleep { handler sleep; workers 1; timeout off; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

sub echo_worker { ((node_doc() // {})->{queues}{echo}{workers} // [])->[0]
    // {} }

my $old_echo = echo_worker()->{pid};
my $job = send_post('/jobs/sleep', '{"ms":' . scaled(3000) . '}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(5), 'sleep job'),
    'a 3 s job runs');
kill 'HUP', sidecar_pid();

my $w = {};
ok(wait_until(sub { $w = echo_worker(); $w->{retiring} }, scaled(2),
    'retiring'), 'while sleep\'s worker finishes its job, echo\'s slot '
    . 'shows its worker of the previous configuration, retiring');
is($w->{pid}, $old_echo, 'with its pid');
is($w->{state}, 'idle', 'and its state, not "down"');
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $top = `$ctl top -b 2>&1`;
like($top, qr/^\S+ +echo +0 +$old_echo +idle /m,
    'offloadctl top shows it too') or diag($top);
is(post_json('/jobs/echo', { during => 'reload' })->{status}, 200,
    'and it answers');

is(read_answer($job, scaled(10))->{status}, 200, 'the sleep job ends');
ok(wait_until(sub { @{ events('reload') } == 1 }, scaled(10), 'reload'),
    'the reload is done');
$w = echo_worker();
ok($w->{pid} && $w->{pid} != $old_echo && !$w->{retiring},
    'echo\'s new worker, not retiring');

finish();
