#!/usr/bin/perl
# W3C Trace Context: a valid traceparent (and its tracestate) travels with
# the job to a C plugin and an exec child, which see the caller's trace id
# under nginx's own span id, the one the answer's traceparent and
# Server-Timing return; without one (or with a malformed one) nginx starts
# a trace of its own and the job runs all the same.  The trace id is on the
# sidecar's log lines for the job, in its crash report and dead letter, in
# an async job's record, and in nginx's access log ($offload_trace_id).  A
# malformed tp field in a stream entry is dropped, not the job.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use OffloadTest;

my $dir = tmpdir();
my $root = "$FindBin::Bin/..";
my $cc = $ENV{CC} // 'cc';

# a plugin handler answering what the handler API gives it
spew("$dir/trace.c", <<'C');
#include <stdio.h>
#include <string.h>
#include "offload.h"

static int
run(offload_job_t *job, const char *payload, size_t len)
{
    char  out[1024];
    int   n;

    (void) payload; (void) len;
    n = snprintf(out, sizeof(out), "{\"tp\":\"%s\",\"ts\":\"%s\"}",
                 offload_job_traceparent(job), offload_job_tracestate(job));
    return offload_job_result(job, out, (size_t) n);
}

static const offload_handler_t  handlers[] = {
    { "t.trace", run, NULL, NULL }, { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_module = { OFFLOAD_ABI_VERSION, handlers };
C
my $build = "$cc -shared -fPIC -Wall -Werror -I$root/sidecar/include "
    . "-o $dir/trace.so $dir/trace.c";
my $o = `$build 2>&1`;
is($?, 0, 'the trace plugin builds') or diag($o);

# an exec child answering the request line's trace fields
spew("$dir/trace.py", <<'PY');
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    res = {"tp": req.get("traceparent"), "ts": req.get("tracestate")}
    sys.stdout.write(json.dumps({"id": req["id"], "result": res}) + "\n")
    sys.stdout.flush()
PY

start_redis();
start_sidecar(level => 'debug json', conf => <<"CONF");
fault_handlers on;
load_module $dir/trace.so;
queue plug { handler t.trace; workers 1; }
queue exe { handler exec; workers 1; command "/usr/bin/python3 $dir/trace.py"; }
queue echo { handler echo; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
CONF
ok(start_jobs_nginx(
    http => q{log_format trace '$request_id $offload_trace_id';},
    server => "access_log $dir/access.log trace;\n"
        . "location ~ ^/async/([^/]+)\$ { offload_pass \$1; "
        . "offload_mode async; }\n"
        . "location /j/ { offload_jobs; }"), 'stack ready');
my $log = "$dir/sidecar.log";

my $tid = '4bf92f3577b34da6a3ce929d0e0e4736';
my $pid = '00f067aa0ba902b7';
my $in = "00-$tid-$pid-01";
my $state = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
my $tp_re = qr/^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

sub traced {
    my ($path, $body, %h) = @_;
    return http('POST', $path, $body // '{}', \%h);
}

# the answer's traceparent, and the one in its Server-Timing
sub answer_tp {
    my ($r) = @_;
    my $st = $r->{headers}{'server-timing'} // '';
    $st = join ', ', @$st if ref $st;
    my ($in_st) = $st =~ /(?:^|,\s*)traceparent;desc="([^"]*)"/;
    return ($r->{headers}{traceparent} // '', $in_st // '');
}

# ---- a valid traceparent reaches a plugin and an exec child
for my $q (qw(plug exe)) {
    my $r = traced("/jobs/$q", '{}', traceparent => $in,
        tracestate => $state);
    is($r->{status}, 200, "$q: 200") or diag($r->{content});
    my $seen = $r->{json}{tp} // '';
    my ($t, $span) = $seen =~ $tp_re;
    is($t, $tid, "$q: the handler sees the caller's trace id");
    ok($span && $span ne $pid, "$q: under nginx's span, not the caller's");
    like($seen, qr/-01$/, "$q: sampled stays sampled");
    is($r->{json}{ts}, $state, "$q: tracestate passes through");
    my ($answer, $st) = answer_tp($r);
    is($answer, $seen, "$q: the answer's traceparent is nginx's span");
    is($st, $seen, "$q: Server-Timing carries it as traceparent;desc");
    like($r->{headers}{'server-timing'} // '',
        qr/^queue;dur=[\d.]+, run;dur=[\d.]+, cpu;dur=[\d.]+, traceparent;/,
        "$q: in the one Server-Timing header, after the timings");
}

# the sampled flag off stays off
my $r = traced('/jobs/plug', '{}', traceparent => "00-$tid-$pid-00");
like($r->{json}{tp} // '', qr/^00-$tid-[0-9a-f]{16}-00$/,
    'flags 00 stay 00');

# a later version is read as far as version 00 goes
$r = traced('/jobs/plug', '{}', traceparent => "01-$tid-$pid-01-later",
    tracestate => 'a=b');
like($r->{json}{tp} // '', qr/^00-$tid-/, 'a later version keeps its trace');
is($r->{json}{ts}, 'a=b', 'and its tracestate');

# several tracestate headers are one list, the empty ones left out
# (before: ",a=1,,b=2", and "," of two empty ones)
sub traced_raw {
    my (@states) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "POST /jobs/plug HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "traceparent: $in\r\n" . join('', map { "tracestate: $_\r\n" }
        @states) . "Content-Type: application/json\r\n"
        . "Content-Length: 2\r\n\r\n{}";
    return read_answer($s, scaled(10));
}
is(traced_raw('', 'a=1', '', 'b=2')->{json}{ts}, 'a=1,b=2',
    'tracestate a=1 and b=2 among empty ones: a=1,b=2');
is(traced_raw('', '')->{json}{ts}, '', 'two empty tracestates: none');
is(traced_raw('', 'c=3')->{json}{ts}, 'c=3', 'an empty one and c=3: c=3');

# ---- malformed: a new trace, the job runs, no tracestate
my %bad = (
    'wrong length'    => "00-$tid-$pid-1",
    'too long for 00' => "00-$tid-$pid-01-x",
    'uppercase'       => '00-' . uc($tid) . "-$pid-01",
    'zero trace id'   => '00-' . ('0' x 32) . "-$pid-01",
    'zero parent id'  => "00-$tid-" . ('0' x 16) . '-01',
    'version ff'      => "ff-$tid-$pid-01",
    'not hex'         => "00-$tid-" . 'g' x 16 . '-01',
    'bad separators'  => "00_${tid}_${pid}_01",
);
my %fresh;
for my $name (sort keys %bad) {
    $r = traced('/jobs/plug', '{}', traceparent => $bad{$name},
        tracestate => $state);
    is($r->{status}, 200, "$name: the job runs");
    my ($t) = ($r->{json}{tp} // '') =~ $tp_re;
    ok($t && $t ne $tid && $t ne '0' x 32, "$name: a new trace ($t)");
    like($r->{json}{tp} // '', qr/-01$/, "$name: sampled");
    is($r->{json}{ts}, '', "$name: no tracestate without a valid parent");
    is((answer_tp($r))[0], $r->{json}{tp}, "$name: answered with it");
    $fresh{$t}++ if $t;
}
is(scalar keys %fresh, scalar keys %bad, 'every new trace id differs');

# an over-long or binary tracestate is dropped, the traceparent kept
$r = traced('/jobs/plug', '{}', traceparent => $in,
    tracestate => 'k=' . ('v' x 600));
is($r->{json}{ts}, '', 'a tracestate over 512 characters is dropped');
like($r->{json}{tp} // '', qr/^00-$tid-/, 'the trace goes on');

# ---- no header: a fresh trace, on the logs, access log, 202 and errors
$r = traced('/jobs/echo', '{"hello":1}');
my ($answer) = answer_tp($r);
my ($fresh) = $answer =~ $tp_re;
ok($fresh, "no traceparent: a fresh one answered ($answer)");
my $job = $r->{headers}{'x-offload-job-id'} // '';
my $rid = $r->{headers}{'x-request-id'} // '';
my @lines;
ok(wait_until(sub {
    @lines = grep { ($_->{'job.id'} // '') eq $job }
             map { json_decode($_) // {} } split /\n/, slurp($log);
    @lines > 0;
}, 5, 'job logged'), 'the worker logged the job');
is(scalar(grep { ($_->{'trace.id'} // '') eq $fresh } @lines),
    scalar @lines, 'every line about the job carries its trace.id');
is($lines[0]{'request.id'}, $rid, 'beside its request.id');
ok(wait_until(sub { slurp("$dir/access.log") =~ /^\Q$rid $fresh\E$/m },
    5, 'access log'), 'the access log has it as $offload_trace_id');

my $bad = traced('/jobs/echo', '{oops', traceparent => $in);
is($bad->{status}, 400, 'a bad body: 400');
like((answer_tp($bad))[0], qr/^00-$tid-[0-9a-f]{16}-01$/,
    'the error answer carries the traceparent too');

# ---- async: the 202 and the job's record
$r = traced('/async/echo', '{"a":1}', traceparent => $in);
is($r->{status}, 202, 'async: 202');
like((answer_tp($r))[0], qr/^00-$tid-/, 'the 202 carries the traceparent');
my $id = $r->{json}{id} // '';
my $doc;
ok(wait_until(sub {
    $doc = http('GET', "/j/$id")->{json};
    $doc && ($doc->{status} // '') eq 'done';
}, scaled(10), 'async done'), 'the async job is done');
is($doc->{trace_id}, $tid, 'GET /jobs/<id> shows its trace id');
$r = traced('/async/echo', '{"a":2}');
$id = $r->{json}{id} // '';
my ($own) = (answer_tp($r))[0] =~ $tp_re;
ok(wait_until(sub {
    $doc = http('GET', "/j/$id")->{json};
    $doc && ($doc->{status} // '') eq 'done';
}, scaled(10), 'async done'), 'a second async job is done');
is($doc->{trace_id}, $own, "one without a traceparent shows nginx's trace");

# ---- a crash: its report and dead letter carry the trace id
$r = http('POST', '/jobs/crash', '{}', {}, scaled(20));
is($r->{status}, 502, 'a crash: 502');
my ($crash_trace) = (answer_tp($r))[0] =~ $tp_re;
ok($crash_trace, 'the 502 carries a traceparent');
my $dead;
ok(wait_until(sub {
    ($dead) = grep { ($_->{id} // '') eq ($r->{headers}{'x-offload-job-id'}
        // '-') } @{ stream_entries('offload:{crash}:dead') };
    $dead;
}, 5, 'dead letter'), 'a dead letter');
is(substr($dead->{tp} // '', 3, 32), $crash_trace,
    'the dead letter carries its traceparent');
my ($report) = grep { ($_->{report}{trace_id} // '') eq $crash_trace }
    @{ events('crash') };
ok($report, 'the crash report names the trace');
# the log is JSON lines here
my $ids = qr/"request\.id":"[0-9a-f]{32}","trace\.id":"\Q$crash_trace\E"/;
ok(wait_until(sub { slurp($log) =~ /holding its job, attempt 1".*$ids/ },
    scaled(5), 'crash line'), 'the crash log line names the request and the trace');
ok(wait_until(sub { slurp($log) =~ /is dead-lettered".*$ids/ },
    scaled(5), 'dead-letter line'), 'so does the supervisor\'s dead-letter line');

# ---- entries written by hand: a bad tp is dropped, not the job
my $stream = 'offload:{plug}:jobs';
my $n = 0;
for my $case (['not a traceparent', 'nonsense', 'a=b'],
              ['uppercase', '00-' . uc($tid) . "-$pid-01", 'a=b'],
              ['state only', undef, "x=\x01"]) {
    my ($name, $tp, $ts) = @$case;
    my $jid = sprintf '%032x', 0xbad0000 + $n++;
    redis_cmd('XADD', $stream, '*', v => 1, id => $jid, payload => '{}',
        (defined $tp ? (tp => $tp) : ()), ts => $ts);
    my $res;
    wait_until(sub {
        $res = redis_cmd('GET', "offload:{plug}:result:$jid");
        defined $res && !ref $res;
    }, 5, "result of $jid");
    like($res // '', qr/^OR1 $jid 200 .*\n\{"tp":"","ts":""\}$/s,
        "entry with $name: runs, without trace context");
}
my $jid = sprintf '%032x', 0xbad0100;
redis_cmd('XADD', $stream, '*', v => 1, id => $jid, payload => '{}',
    tp => "00-$tid-$pid-01", ts => $state);
my $res;
wait_until(sub {
    $res = redis_cmd('GET', "offload:{plug}:result:$jid");
    defined $res && !ref $res;
}, 5, "result of $jid");
like($res // '', qr/\{"tp":"00-$tid-$pid-01","ts":"\Q$state\E"\}$/,
    'a valid tp and ts in an entry reach the handler as written');

finish();
