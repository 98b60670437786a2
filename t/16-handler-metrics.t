#!/usr/bin/perl
# Handler metrics (docs/HANDLERS.md, "Metrics"): a C plugin counts and
# observes with offload_metric_count/offload_metric_observe, an exec
# child writes metric lines through the Python SDK; the node document,
# offload_status and offload_metrics (promtool-clean) show each queue's
# figures; the 65th name of a queue is refused with one log line; counts a
# worker published survive its SIGKILL and are not counted twice.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use OffloadBrowser;

my $dir = tmpdir();
my $root = "$FindBin::Bin/..";
my $cc = $ENV{CC} // 'cc';
my $py = '/usr/bin/python3';
my $node = -x '/usr/bin/node' ? '/usr/bin/node' : '/usr/bin/nodejs';

# ---- the plugin: every job counts 100 bytes in and observes 12.5 ms (as
# seconds: promtool frowns on abbreviated units such as _ms); a job
# {"many": 1} names 70 counters; a job {"hang": n}, on its first attempt,
# counts n under kill.me and hangs
spew("$dir/metrics.c", <<'C');
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "offload.h"

static int
run(offload_job_t *j, const char *p, size_t n)
{
    char  buf[256], name[32], out[64];
    int   i, refused = 0, hang;

    snprintf(buf, sizeof(buf), "%.*s", (int) n, p);
    if (offload_metric_count(j, "thumbs.bytes_in", 100) != OFFLOAD_OK
        || offload_metric_observe(j, "model.latency_seconds",
                                  0.0125) != OFFLOAD_OK
        || offload_metric_count(j, "bad name!", 1) != OFFLOAD_ERROR
        || offload_metric_observe(j, "9lives", 1) != OFFLOAD_ERROR
        || offload_metric_observe(j, "model.latency_seconds.count", 1)
           != OFFLOAD_ERROR)
    {
        return offload_job_fail(j, "metric_call", "unexpected answer");
    }
    if (strstr(buf, "\"many\"")) {
        for (i = 0; i < 70; i++) {
            snprintf(name, sizeof(name), "name.n%02d", i);
            refused += offload_metric_count(j, name, 1) != OFFLOAD_OK;
        }
    }
    if (sscanf(buf, "{\"hang\":%d", &hang) == 1
        && offload_job_attempt(j) == 1)
    {
        offload_metric_count(j, "kill.me", (uint64_t) hang);
        for ( ;; ) {
            pause();
        }
    }
    snprintf(out, sizeof(out), "{\"refused\":%d}", refused);
    return offload_job_result(j, out, strlen(out));
}

static const offload_handler_t  h[] = { { "t.metrics", run, 0, 0 }, { 0 } };
const offload_module_t  offload_module = { OFFLOAD_ABI_VERSION, h };
C
my $o = qx($cc -shared -fPIC -Wall -Werror -I$root/sidecar/include \\
    -o $dir/metrics.so $dir/metrics.c 2>&1);
is($?, 0, 'the metrics plugin compiles') or diag($o);

start_redis();
start_sidecar(conf => <<"CONF");
load_module $dir/metrics.so;
queue cm { handler t.metrics; workers 2; max_attempts 3; }
queue cm2 { handler t.metrics; workers 1; }
queue xm { handler exec; workers 1;
           command "$py $FindBin::Bin/exec/metrics.py"; }
queue xn { handler exec; workers 1;
           command $node "$FindBin::Bin/exec/metrics.js"; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => <<'SERVER'), 'stack ready');
    location = /status { offload_status; }
    location = /metrics { offload_metrics; }
    location = /dash { offload_dashboard; }
SERVER

sub hm { (((node_doc() || {})->{queues} || {})->{$_[0]} || {})
         ->{handler_metrics} }
# hmv(queue, name, field): a figure of the node document, 0 if none
sub hmv { ((hm($_[0]) || {})->{ $_[1] } || {})->{ $_[2] } // 0 }

# ---- a queue whose handler records nothing publishes nothing
for (1 .. 3) { post_json('/jobs/echo', {}) }
ok(!exists node_doc()->{queues}{echo}{handler_metrics},
    'echo records nothing: no handler_metrics in the node document');

# ---- the plugin
for (1 .. 5) {
    my $r = post_json('/jobs/cm', {});
    is($r->{status}, 200, 'cm job answered') or diag($r->{content});
}
ok(wait_until(sub { hmv('cm', 'thumbs_bytes_in', 'count') == 500 },
              scaled(5), 'cm counted'),
    'node document: thumbs_bytes_in count 500 over two workers');
my $lat = hm('cm')->{model_latency_seconds};
is($lat->{observations}, 5, 'model_latency_seconds: 5 observations');
is($lat->{sum}, 0.0625, 'model_latency_seconds: sum 0.0625');
is_deeply($lat->{buckets}, [ [ 1, 5 ] ],
    'model_latency_seconds: all in the bucket of 0.01 .. 0.025 (index 1)');
ok(!exists hm('cm')->{bad_name_}, 'a bad name records nothing');

# ---- the exec child's metric lines
for my $size (10, 20, 3000) {
    my $r = post_json('/jobs/xm', { n => 2, size => $size });
    is($r->{status}, 200, 'xm job answered') or diag($r->{content});
}
ok(wait_until(sub { hmv('xm', 'exec_size', 'observations') == 3 },
              scaled(5), 'xm observed'),
    'node document: exec_size observed 3 times');
is(hm('xm')->{exec_lines}{count}, 6, 'exec_lines counted 6');
is(hm('xm')->{exec_size}{sum}, 3030, 'exec_size sum 3030');
is(post_json('/jobs/xn', { n => 4, size => 0.5 })->{status}, 200,
    'xn (Node) job answered');
ok(wait_until(sub { hmv('xn', 'exec_lines', 'count') == 4 }, scaled(5),
              'xn counted'), 'the Node SDK\'s job.count');
ok(wait_until(sub { hmv('xn', 'exec_size', 'sum') == 0.5 }, scaled(5),
              'xn observed'), 'and its job.observe');

# what the SDKs cannot send fails the job (422), never the process (502,
# the job run again)
for my $case ([ xm => { bad => 1 }, 'Python: a count of -1' ],
              [ xn => { bad => 1 }, 'Node: a count of -1' ],
              [ xn => { fn => 1 }, 'Node: a function for a result' ]) {
    my ($q, $payload, $what) = @$case;
    my $r = post_json("/jobs/$q", $payload);
    is($r->{status} . ' ' . ($r->{json}{error}{code} // ''),
       '422 handler_error', "$what: 422 handler_error")
        or diag($r->{content});
}

# ---- offload_status: per queue, handler_metrics
my $st;
ok(wait_until(sub {
    $st = http('GET', '/status')->{json} or return 0;
    my $x = $st->{queues}{xm}{handler_metrics}{exec_size} or return 0;
    $x->{observations} == 3;
}, scaled(5), 'status shows xm'), 'offload_status: xm handler_metrics');
my $c = $st->{queues}{cm}{handler_metrics};
is($c->{thumbs_bytes_in}{count}, 500, 'status: thumbs_bytes_in 500');
is($c->{model_latency_seconds}{observations}, 5, 'status: 5 observations');
is($c->{model_latency_seconds}{mean}, 0.0125, 'status: mean 0.0125');
is($c->{model_latency_seconds}{p50}, 0.025,
    'status: p50 is its bucket\'s bound');
is($st->{queues}{xm}{handler_metrics}{exec_size}{p99}, 5000,
    'status: exec_size p99 within its bucket (3000 <= 5000)');
is_deeply($st->{queues}{echo}{handler_metrics}, {},
    'status: echo has an empty handler_metrics');

# ---- offload_metrics
my $n = node_name();
my $m;
ok(wait_until(sub {
    $m = http('GET', '/metrics')->{content} // '';
    $m =~ /^offload_handler_exec_size_count\{[^}]*queue="xm"\} 3$/m;
}, scaled(5), 'metrics show xm'), 'offload_metrics: exec_size count 3');
my $l = qq(node="$n",queue="cm");
like($m, qr/^# TYPE offload_handler_thumbs_bytes_in_total counter$/m,
    'a counter family per name');
like($m, qr/^offload_handler_thumbs_bytes_in_total\{\Q$l\E\} 500$/m,
    'counter: 500 for queue cm');
like($m, qr/^# TYPE offload_handler_model_latency_seconds histogram$/m,
    'a histogram family per observed name');
like($m,
    qr/^offload_handler_model_latency_seconds_bucket\{\Q$l\E,le="0.01"\} 0$/m,
    'histogram: none up to 0.01');
like($m,
    qr/^offload_handler_model_latency_seconds_bucket\{\Q$l\E,le="0.025"\} 5$/m,
    'histogram: 5 up to 0.025');
like($m,
    qr/^offload_handler_model_latency_seconds_bucket\{\Q$l\E,le="\+Inf"\} 5$/m,
    'histogram: 5 in all');
like($m, qr/^offload_handler_model_latency_seconds_sum\{\Q$l\E\} 0\.0625/m,
    'histogram sum');
like($m, qr/^offload_handler_exec_lines_total\{node="\Q$n\E",queue="xm"\} 6$/m,
    'the exec child\'s counter');
SKIP: {
    skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
    spew("$dir/metrics.txt", $m);
    my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
    is($?, 0, 'promtool check metrics passes') or diag($out);
}

# ---- the dashboard: a small table a queue
SKIP: {
    skip 'chromium is not installed', 3 unless OffloadBrowser::chromium();
    my $browser = OffloadBrowser->new;
    $browser->navigate('http://127.0.0.1:' . nginx_port() . '/dash');
    my $rows;
    ok(wait_until(sub {
        $rows = $browser->eval_js('Array.prototype.map.call('
            . 'document.querySelectorAll("#handler-metrics '
            . 'table[data-queue=xm] tr"), function (tr) {'
            . ' return tr.textContent; })');
        @{ $rows || [] } == 3;
    }, scaled(15), 'dashboard table'), 'the dashboard shows queue xm\'s')
        or diag(explain($rows));
    like($rows->[0] // '', qr/^namecountobservationsmeanp50 .*p99 /,
        'its head');
    is_deeply([ @$rows[1, 2] ], [ 'exec_lines6', 'exec_size031010255000' ],
        'a row a name: count, observations, mean, p50, p99');
}

# ---- a subprocess's stdout is not the protocol's (after the reads above:
# this job counts and observes too, and when its figures land is the
# heartbeat's business, not something those reads should race)
my $sub = post_json('/jobs/xm', { shell => 1 });
is($sub->{status}, 200, 'Python: echo in a subprocess, the job answered')
    or diag($sub->{content});
ok(wait_until(sub {
    (slurp(tmpdir() . '/sidecar.log') // '') =~ /a line from a subprocess/
}, scaled(5), 'the subprocess logged'),
    'and its line logged as the handler\'s stderr');

# ---- 64 names a queue: the 65th refused, one log line however often
my $log = "$dir/sidecar.log";
my $r = post_json('/jobs/cm2', { many => 1 });
is($r->{json}{refused}, 8, '2 + 62 names taken, 8 refused');
$r = post_json('/jobs/cm2', { many => 1 });
is($r->{json}{refused}, 8, 'the same 8 refused again');
ok(wait_until(sub {
    ((((node_doc() || {})->{queues} || {})->{cm2} || {})
        ->{handler_metrics_refused} // 0) == 16 }, scaled(5), 'refused'),
    'node document: 16 refused calls');
is(scalar(keys %{ hm('cm2') }), 64, 'cm2 lists 64 names');
is(hm('cm2')->{name_n61}{count}, 2, 'the 64th name counted');
ok(!exists hm('cm2')->{name_n62}, 'the 65th is not');
my @lines = grep { /handler metric/ && /refused/ } split /\n/, slurp($log);
is(scalar @lines, 1, 'one log line for 16 refused calls') or diag(@lines);
like($lines[0] // '', qr/name_n62/, 'naming the first refused name');
is(hm('cm')->{name_n00}, undef, 'another queue\'s table is its own');

# ---- a worker SIGKILLed after it counted: its counts stay, once
my $pid = send_post('/jobs/cm', '{"hang":7}');
ok(wait_until(sub { hmv('cm', 'kill_me', 'count') == 7 }, scaled(5),
              'kill.me published'),
    'the hanging job\'s count is published before it ends');
my ($busy) = grep { $_->{job} } @{ node_doc()->{queues}{cm}{workers} };
ok($busy && $busy->{pid}, 'the busy worker is known') or BAIL_OUT('no');
kill 'KILL', $busy->{pid};
my $ans = read_answer($pid);
is($ans->{status}, 200, 'the job ran again in a new worker and answered');
ok(wait_until(sub {
    my $w = node_doc()->{queues}{cm}{workers};
    grep { $_->{pid} && $_->{pid} != $busy->{pid}
           && $_->{slot} == $busy->{slot} } @$w }, scaled(10),
    'slot refilled'), 'a new process fills the killed worker\'s slot');
for (1 .. 3) { post_json('/jobs/cm', {}) }
ok(wait_until(sub { hmv('cm', 'thumbs_bytes_in', 'count') == 1000 },
    scaled(5), 'counted on'),
    'thumbs_bytes_in: 500 + 100 (the killed job) + 100 (its rerun) + 300');
is(hm('cm')->{kill_me}{count}, 7, 'kill.me: 7, neither lost nor doubled');

finish();
