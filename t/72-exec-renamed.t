#!/usr/bin/perl
# A Redis whose EXEC is renamed away (rename-command, as some managed
# Redis services do): the completion of a plain job, a transaction, is
# answered "unknown command" with its MULTI still open.  The worker drops
# that link (its next commands would be queued into the MULTI), says once
# that it completes by the script from then on, and every job is
# answered.  (Before: at every job, the worker's next read was queued
# into the open MULTI, answered QUEUED, and the link dropped for that:
# a protocol error, a reconnect and a refusal logged for each job.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis(args => [ '--rename-command', 'EXEC', '' ]);
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
queue bigfirst { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(workers => 1, server => "    client_max_body_size 4m;\n"),
    'stack ready: the first job answered');

my $t0 = time;
my @r = map { post_json('/jobs/echo', { n => $_ }, 10) } 1 .. 10;
is(scalar(grep { ($_->{status} // 0) == 200 && ($_->{json}{n} // 0) > 0 }
    @r), 10, sprintf('ten jobs answered in %.2f s', time - $t0));

my $log = slurp(tmpdir() . '/sidecar.log');
my $dropped = qr/worker echo:0: redis protocol error: EXEC refused, MULTI/
    . qr/ open: dropping/;
my $said = qr/worker echo:0: MULTI or EXEC refused \(ERR unknown command/;
is(scalar(() = $log =~ /$dropped/g), 1, 'the link left in MULTI dropped, '
    . 'once');
is(scalar(() = $log =~ /$said/g), 1, 'the worker says once that it '
    . 'completes by the script from then on');
is(redis_cmd('XPENDING', 'offload:{echo}:jobs', 'workers')->[0], 0,
    'nothing left pending');

# The supervisor keeps crash reports in its list without MULTI/EXEC: a
# crash's report is kept, and its link goes on serving the registry.
# (Before: its LPUSH and LTRIM were queued into a MULTI no EXEC closed,
# and so was every command after them: the node's document was no longer
# refreshed, and nginx answered no_workers.)
is(post_json('/jobs/crash', {})->{status}, 502, 'a crash: 502');
ok(wait_until(sub { @{ redis_cmd('LRANGE', 'offload:{ctl}:crashes', 0, -1)
    // [] } == 1 }, scaled(5), 'crash report kept'),
    'its report kept in the crash list');
my $seen = redis_cmd('GET', 'offload:{ctl}:node:' . node_name());
ok(wait_until(sub { my $now = redis_cmd('GET', 'offload:{ctl}:node:'
    . node_name()); defined $now && $now ne $seen }, scaled(5),
    'document refreshed'), 'the node\'s document is refreshed after it');
is(post_json('/jobs/echo', { after => 'crash' })->{status}, 200,
    'and jobs run on');

# nginx writes a big body by MULTI, RPUSH, PEXPIRE, EXEC on its bulk
# connection, where it also reads big results.  EXEC refused left that
# MULTI open: every later command there (a big result's LLEN and LINDEXes)
# was queued into it, and no big result could be read any more.  nginx
# drops the connection, once, and reads them again after it.
my $r = http('POST', '/jobs/echo', '"' . ('b' x (2 << 20)) . '"');
is($r->{status}, 503, 'a big body: 503, Redis refused its EXEC');
my $one = '"' . ('r' x (1048576 - 2)) . '"';
ok(wait_until(sub {
    $r = http('POST', '/jobs/echo', $one);
    ($r->{status} // 0) == 200;
}, scaled(5), 'big result read'), 'then a big result is read on that '
    . 'connection: 200 (' . ($r->{status} // '?') . ')');
ok(($r->{content} // '') eq $one, '... whole');
my $dropped_bulk = qr/bulk connection: EXEC refused with its MULTI open/;
is(scalar(() = slurp(nginx_error_log()) =~ /$dropped_bulk/g), 1,
    'nginx dropped its bulk connection, once');

# nginx's later big bodies begin by a script (before: each answered 503,
# for good)
my $body = '"' . ('c' x (2 << 20)) . '"';
for my $i (1 .. 2) {
    $r = http('POST', '/jobs/echo', $body);
    is($r->{status}, 200, "big body $i after it: 200");
    ok(($r->{content} // '') eq $body, '... whole');
}
my $scripted = qr/refused MULTI or EXEC \(ERR unknown command 'EXEC'[^\n]*/
    . qr/\): big bodies begin by a script/;
is(scalar(() = slurp(nginx_error_log()) =~ /$scripted/g), 1,
    'nginx says once that big bodies begin by a script');
is(scalar(() = slurp(nginx_error_log()) =~ /$dropped_bulk/g), 1,
    'and drops its bulk connection no more');

# A worker whose first job has a big result: staging its list begins with
# a MULTI ... EXEC, refused; the worker drops that link and stages it
# again by a script (before: by MULTI again, at every reconnect, for
# good, with the client waiting until its deadline and the worker stuck)
$r = http('POST', '/jobs/bigfirst', $one);
is($r->{status}, 200, 'a first job with a big result: 200');
ok(($r->{content} // '') eq $one, '... whole');
$log = slurp(tmpdir() . '/sidecar.log');
is(scalar(() = $log =~ /worker bigfirst:0: MULTI or EXEC refused/g), 1,
    'its worker says once that it goes by scripts from then on');

finish();
