#!/usr/bin/perl
# A worker being stopped (here by its pool's failure), then killed by a
# cancel of its running job: its slot's next process is not taken for one
# asked to stop.  (Before: the slot kept the mark, so that process was
# never sent SIGTERM: a graceful stop of the sidecar waited for it for
# good, and a reload never retired it.  Found by a review.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $mis = "/usr/bin/python3 $FindBin::Bin/exec/misbehave.py";

start_redis();
start_sidecar(conf => <<"CONF");
shutdown_timeout 60s;
queue mix { handler exec; command "$mis"; workers 2; prefetch 1;
            max_attempts 1; max_restarts 1 60s; restart_cooldown 1s;
            restart_backoff 10ms 10ms; }
queue echo { handler echo; workers 1; }
CONF
start_server_nginx(server => <<'SERVER');
    offload_timeout 60s;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /stop/ { offload_jobs; offload_cancel_running on; }
SERVER
ok(wait_nginx_ready('/sync/echo', '{}'), 'stack ready');
my $log = tmpdir() . '/sidecar.log';

# one worker runs a long job; the other crashes twice: the pool fails, and
# the busy worker is asked to stop (it finishes its job first)
my $id = post_json('/async/mix', { sleep => 60 })->{json}{id} // '';
ok(wait_until(sub { pending_jobs('mix') == 1 }, scaled(10), 'running'),
    'a 60 s job runs');
post_json('/sync/mix', { exit => 3 }) for 1 .. 2;
ok(wait_until(sub { slurp($log) =~ /pool mix failed/ }, scaled(10),
    'pool failed'), 'two crashes: the pool fails, its busy worker is '
    . 'asked to stop');
is(http('DELETE', "/stop/$id")->{status}, 200, 'its job cancelled: the '
    . 'worker killed');
ok(wait_until(sub { slurp($log) =~ /pool mix restarting after cooldown/ },
    scaled(10), 'restarted'), 'the pool starts again after its cooldown');
ok(wait_until(sub { (post_json('/sync/mix', { n => 1 })->{status} // 0)
    == 200 }, scaled(10), 'mix serves'), 'and serves');

my $t0 = time;
is(stop_sidecar(scaled(10)), 0, 'the sidecar stops (SIGTERM), each new '
    . 'worker told to');
cmp_ok(time - $t0, '<', scaled(10), '... well before shutdown_timeout');

finish();
