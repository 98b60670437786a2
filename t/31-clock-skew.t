#!/usr/bin/perl
# A host whose clock disagrees with the others' (NTP stopped, a VM restored
# from a snapshot): deadlines, submit times and due times are read by
# Redis' clock on every side, so a sidecar's host 60 s ahead or behind,
# or nginx's 60 s behind, still runs every job in its time, and each says
# so in its log.  Each process's clock is moved with libfaketime
# (LD_PRELOAD), its monotonic clock left alone.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $faketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';
-e $faketime or give_up("no $faketime: make test installs faketime");

# env(1) before the program: its wall clock moved by $how, "+60s", or
# as a file says, read again at every look (a step when it is rewritten).
# Under the sanitizers libfaketime goes first (after their runtime, it
# deadlocks it at start), with their options ($asan) told not to mind.
sub skewed {
    my ($how, $preload, $asan) = @_;
    my @env = ("LD_PRELOAD=" . join(':', grep { $_ } $faketime, $preload),
        'FAKETIME_DONT_FAKE_MONOTONIC=1',
        -f $how ? ("FAKETIME_TIMESTAMP_FILE=$how", 'FAKETIME_NO_CACHE=1')
                : "FAKETIME=$how");
    push @env, "ASAN_OPTIONS=$asan:verify_asan_link_order=0" if sanitize();
    return [ 'env', @env ];
}

my $dir = tmpdir();
my $sidecar_asan = 'detect_leaks=1:abort_on_error=0';   # start_sidecar's
my $left = "$FindBin::Bin/exec/deadline_left.pl";
my $conf = <<"CONF";
queue echo { handler echo; workers 1; }
queue left { handler exec; workers 1; command "$left"; }
CONF
my $server = <<'SERVER';
    offload_timeout 30s;
    location ~ ^/async/([^/]+)$ {
        offload_pass $1;
        offload_mode async;
        offload_jobs_url /job/;
    }
    location /job/ { offload_jobs; }
    location = /metrics { offload_metrics; }
SERVER

my $n = 0;
# $count echo jobs, each answered 200 with its own payload, their queue
# times (Server-Timing) under a second; returns what went wrong, or ''.
sub echoes {
    my ($count) = @_;
    for (1 .. $count) {
        my $r = post_json('/jobs/echo', { n => ++$n });
        return "job $n: $r->{status} $r->{content}"
            unless $r->{status} == 200 && ($r->{json}{n} // 0) == $n;
        my ($queue) = ($r->{headers}{'server-timing'} // '')
            =~ /queue;dur=([\d.]+)/;
        return "job $n: queue time " . ($queue // 'none')
            unless defined $queue && $queue < 1000;
    }
    return '';
}

# The ms a job has left by the handler's own clock, as it starts.
sub left_ms {
    my $r = post_json('/jobs/left', {});
    return $r->{status} == 200 ? $r->{json}{left_ms} : "$r->{status}";
}

sub log_since {
    my ($file, $from) = @_;
    my $text = slurp($file);
    return substr($text, $from // 0);
}

sub redis_ms {
    my $t = redis_cmd('TIME');
    return $t->[0] * 1000 + int($t->[1] / 1000);
}

start_redis();

# ---- the sidecar's host 60 s ahead --------------------------------------

start_sidecar(wrapper => skewed('+60s', undef, $sidecar_asan),
    conf => $conf);
ok(wait_until(sub {
    log_since("$dir/sidecar.log")
        =~ /this host's clock is (59\.9|60\.0)\d* s ahead of Redis'/;
}, scaled(10), 'the warning'), 'sidecar 60 s ahead: said, at warn')
    or diag(log_since("$dir/sidecar.log"));
my $doc = node_doc();
ok(abs(($doc->{clock_offset_ms} // 0) + 60_000) < 1000,
    'its node document has the offset')
    or diag("clock_offset_ms: " . ($doc->{clock_offset_ms} // 'none'));

my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $status = `$ctl status`;
like($status, qr/^  CLOCK (59\.9|60\.0)\d* s ahead of Redis'$/m,
    'offloadctl status says so') or diag($status);
like($status, qr/^\Q${\node_name()}\E +\d+ +\d\.\ds +\d\.\ds ago$/m,
    '... with its uptime and heartbeat by Redis\' clock') or diag($status);
ok(start_jobs_nginx(workers => 1, server => $server), 'nginx ready');
is(echoes(20), '', '20 sync jobs answered 200 in their time');
my $node = node_name();
like(http('GET', '/metrics')->{content},
    qr/^offload_node_clock_offset_seconds\{node="\Q$node\E"\} -(59\.9|60)/m,
    'offload_metrics has the offset');
my $l = left_ms();
ok($l =~ /^-?\d+$/ && $l > 25_000 && $l <= 30_500,
    'a handler reads its deadline 30 s ahead by its own clock')
    or diag("left: $l");
my $r = post_json('/async/echo', { async => 1 });
my $id = $r->{json}{id} // '';
ok(wait_until(sub {
    (http('GET', "/job/$id")->{json}{status} // '') eq 'done';
}, scaled(10), 'async job done'), 'an async job: done');
unlike(log_since("$dir/sidecar.log"), qr/expired/, 'nothing expired');

stop_sidecar();

# ---- the sidecar's host 60 s behind -------------------------------------

my $from = length slurp("$dir/sidecar.log");
start_sidecar(wrapper => skewed('-60s', undef, $sidecar_asan),
    conf => $conf);
ok(wait_until(sub {
    log_since("$dir/sidecar.log", $from)
        =~ /this host's clock is (59\.9|60\.0)\d* s behind Redis'/;
}, scaled(10), 'the warning'), 'sidecar 60 s behind: said');
$status = `$ctl status`;
like($status, qr/^\Q${\node_name()}\E +\d+ +\d\.\ds +\d\.\ds ago$/m,
    'offloadctl status: its heartbeat a moment ago') or diag($status);
# until nginx's registry read sees the restarted node, a job may get 503
# no_workers (docs/HTTP_API.md)
ok(wait_until(sub { echoes(1) eq '' }, scaled(5), 'nginx sees the node'),
    'a job after the restart: 200');
is(echoes(20), '', '20 sync jobs answered 200, queue times right');
$l = left_ms();
ok($l =~ /^-?\d+$/ && $l > 25_000 && $l <= 30_500,
    'a handler reads its deadline 30 s ahead by its own clock')
    or diag("left: $l");

stop_nginx();
stop_sidecar();

# ---- nginx's host 60 s behind --------------------------------------------

$from = length slurp("$dir/sidecar.log");
start_sidecar(conf => $conf);
# nginx gives its workers only the environment `env` names
my $env = nginx_env();
ok(start_jobs_nginx(workers => 1, server => $server,
    wrapper => skewed('-60s', $env->{LD_PRELOAD}, $env->{ASAN_OPTIONS}),
    main => "env FAKETIME;\nenv FAKETIME_DONT_FAKE_MONOTONIC;\n"),
    'nginx 60 s behind: ready');
ok(wait_until(sub {
    slurp(nginx_error_log())
        =~ /this host's clock is (59\.9|60\.0)\d* s behind Redis'/;
}, scaled(10), 'the warning'), "nginx: said, at warn")
    or diag(slurp(nginx_error_log()));
is(echoes(20), '', '20 sync jobs answered 200 in their time');
$l = left_ms();
ok($l =~ /^-?\d+$/ && $l > 25_000 && $l <= 30_500,
    'the deadline is 30 s from now by Redis\' clock') or diag("left: $l");
$r = post_json('/async/echo', { async => 2 });
my $submitted = $r->{status} == 202
    ? http('GET', "/job/$r->{json}{id}")->{json}{submitted_at} // 0 : 0;
ok(abs($submitted - redis_ms()) < 5000,
    'an async job is stamped by Redis\' clock')
    or diag("submitted_at $submitted, Redis " . redis_ms());
unlike(log_since("$dir/sidecar.log", $from), qr/clock is|expired/,
    'the sidecar, whose clock agrees, says nothing of clocks');
$status = `${\build_path('offloadctl')} -c ${\sidecar_conf_file()} status`;
unlike($status, qr/CLOCK/, '... nor does offloadctl status');

# ---- programs that submit through Redis, 60 s behind -----------------------

# liboffload (offloadctl submit) and sdk/python/offload_client.py stamp
# their jobs by Redis' clock too, and offloadctl retry a dead letter
my $behind = join ' ', @{ skewed('-60s', undef, $sidecar_asan) };
my $out = `$behind $ctl submit --wait --deadline 30s echo '{"c":1}' 2>&1`;
is($? >> 8, 0, 'liboffload 60 s behind: the job ran in its time')
    or diag($out);
my $python = '/usr/bin/python3';   # python3-redis is Debian's
my $sdk = "$FindBin::Bin/../sdk/python";
my $port = redis_port();
$out = `$behind $python -c '
import sys; sys.path.insert(0, "$sdk")
import redis, offload_client
c = offload_client.Client(redis.Redis(port=$port))
print(c.submit("echo", {"from": "python"}, wait=True, timeout=10).status)
' 2>&1`;
is($out, "200\n", 'offload_client.py 60 s behind: 200');

my $dead = 'd' x 32;
my $now = redis_ms();
redis_cmd('XADD', 'offload:{echo}:dead', '*', v => 1, id => $dead,
    payload => '{"again":1}', deadline => $now + 30_000, submitted => $now,
    attempt => 2, reason => 'signal', dead_at => $now);
$out = `$behind $ctl retry echo $dead 2>&1`;
ok(wait_until(sub {
    (redis_cmd('GET', "offload:{echo}:result:$dead") // '') =~ /^OR1 \S+ 200 /;
}, scaled(5), 'the result'), 'offloadctl retry 60 s behind: the job ran')
    or diag($out);

# ---- TIME refused (an ACL without +time) ---------------------------------

# each side says so once, and keeps the offset it measured last: nginx,
# 60 s behind, still stamps jobs right
redis_cmd('ACL', 'SETUSER', 'default', '-time');
ok(wait_until(sub {
    slurp(nginx_error_log()) =~ /refused TIME \(NOPERM/
        && log_since("$dir/sidecar.log", $from) =~ /Redis refused TIME/;
}, scaled(10), 'the refusals'), 'TIME refused: nginx and the sidecar say so')
    or diag(log_since("$dir/sidecar.log", $from));
is(echoes(5), '', 'jobs still run in their time');
my @said = slurp(nginx_error_log()) =~ /refused TIME/g;
is(scalar @said, 1, 'said once');
redis_cmd('ACL', 'SETUSER', 'default', '+time');

# ---- a wall clock stepped between two measures ----------------------------

# Redis' clock is read by the monotonic clock plus what it was ahead of
# it: the sidecar's host clock stepped an hour ahead (its next measure 20 s
# away), then nginx's an hour back (its next within a second), and jobs
# sent at once run in their time
stop_nginx();
stop_sidecar();
my ($sidecar_step, $nginx_step) = ("$dir/sidecar-step", "$dir/nginx-step");
spew($_, "+0\n") for $sidecar_step, $nginx_step;
start_sidecar(wrapper => skewed($sidecar_step, undef, $sidecar_asan),
    heartbeat => '20s', conf => $conf);
ok(start_jobs_nginx(workers => 1, server => $server,
    wrapper => skewed($nginx_step, $env->{LD_PRELOAD},
        $env->{ASAN_OPTIONS}),
    main => "env FAKETIME_TIMESTAMP_FILE;\nenv FAKETIME_NO_CACHE;\n"
        . "env FAKETIME_DONT_FAKE_MONOTONIC;\n"), 'stack up, clocks agreeing');
# nginx's first measure, a moment after its command link came up
ok(wait_until(sub { echoes(1) eq '' }, scaled(5), 'a job'), 'jobs run');
spew($sidecar_step, "+3600s\n");
is(echoes(10), '', 'the sidecar an hour ahead: 10 jobs at once, 200');
spew($sidecar_step, "+0\n");
spew($nginx_step, "-3600s\n");
is(echoes(10), '', 'nginx an hour behind: 10 jobs at once, 200');

finish();
