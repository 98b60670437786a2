#!/usr/bin/perl
# offload_status (JSON) and offload_metrics (Prometheus text): the nginx
# metrics zone's counters and histograms, every node's workers and queues
# from Redis, sorting and limits, bad arguments, Redis away.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 2; }
queue leak { handler leak; workers 1; }
queue sleep { handler sleep; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1;
              max_restarts 100 1s; restart_backoff 10ms 10ms; }
CONF
ok(start_jobs_nginx(server => <<'SERVER'), 'stack ready');
location = /status { offload_status; }
location = /metrics { offload_metrics; }
location ~ ^/short/([^/]+)$ { offload_timeout 300ms; offload_pass $1; }
SERVER

sub status {
    my $r = http('GET', '/status' . ($_[0] // ''));
    return $r->{json} || {};
}

sub requests { status()->{nginx}{queues}{ $_[0] }{requests}{ $_[1] } // 0 }
sub invalid { status()->{nginx}{invalid_requests}{ $_[0] } // 0 }

# each nginx worker answers its last status again for up to 100 ms: a count
# just made shows within that
sub counts_to {
    my ($count, $want, $msg) = @_;
    my $got;
    wait_until(sub { ($got = $count->()) == $want }, scaled(5), $msg);
    is($got, $want, $msg);
}

# ---- the nginx counters: answers by queue and status
my $before = requests('echo', '200');
post_json('/jobs/echo', { i => $_ }) for 1 .. 10;
counts_to(sub { requests('echo', '200') }, $before + 10,
    'ten more echo 200s counted');
my $bad = status()->{nginx}{queues}{echo}{requests}{400} // 0;
post_json('/jobs/echo', '{oops');
counts_to(sub { requests('echo', '400') }, $bad + 1,
    'a bad JSON body counts as echo 400');
my $bad405 = invalid('405');
is(http('GET', '/jobs/echo')->{status}, 405, 'GET on offload_pass: 405');
counts_to(sub { invalid('405') }, $bad405 + 1,
    'counted as an invalid request, 405');
my $r = http('GET', '/status');
is($r->{status}, 200, 'status answers 200');
like($r->{headers}{'content-type'}, qr{^application/json}, 'as JSON');
my $s = $r->{json};
ok($s->{nginx}{queues}{echo}{request_p50_ms} > 0, 'request p50 from the '
    . 'histogram');
is(scalar @{ $s->{nginx}{queues}{echo}{request_hist} }, 20,
    '20 request-time buckets');

# ---- the nodes from Redis
is($s->{redis}, 'ok', 'redis reached');
my ($node) = grep { $_->{node} eq node_name() } @{ $s->{nodes} };
ok($node, 'our node is listed');
is($s->{workers_total}, 5, 'five workers in all');
is(scalar @{ $s->{workers} }, 5, 'all listed without a limit');
my ($w) = grep { $_->{queue} eq 'echo' } @{ $s->{workers} };
is($w->{node}, node_name(), 'a flattened worker names its node');
is($s->{queues}{echo}{workers}, 2, 'queue echo: two workers');
is($s->{queues}{echo}{state}, 'ok', 'queue echo: ok');

# ---- each worker once: the node entries without their queues' workers
# (the flat list has them), unless ?full=1; the rest of the document kept
my $doc = node_doc();
ok(!grep({ exists $_->{workers} } values %{ $node->{queues} || {} }),
    "node entry: no queue lists its workers");
is_deeply([ sort keys %{ $node->{queues} } ], [ sort keys %{ $doc->{queues} } ],
    'node entry: every queue of the document');
is_deeply([ sort grep { $_ ne 'workers' } keys %{ $node->{queues}{echo} } ],
    [ sort grep { $_ ne 'workers' } keys %{ $doc->{queues}{echo} } ],
    'node entry: the rest of each queue kept');
is($node->{pid}, $doc->{pid}, 'node entry: the document\'s pid');
my $full = status('?full=1');
my ($fnode) = grep { $_->{node} eq node_name() } @{ $full->{nodes} };
is(scalar @{ $fnode->{queues}{echo}{workers} || [] }, 2,
    '?full=1: the node entry lists its queues\' workers');
is(scalar @{ $full->{workers} }, 5, '?full=1: and the flat list');
is(http('GET', '/status?full=0')->{status}, 200, 'full=0 accepted');

# ---- sort and limit: a leaking worker rises to the top by memory
post_json('/jobs/leak', { mb => 32 });
ok(wait_until(sub {
    my $top = status('?sort=memory&limit=1')->{workers} || [];
    @$top == 1 && $top->[0]{queue} eq 'leak' && $top->[0]{rss} > 32 << 20;
}, scaled(5), 'leak on top'), 'sort=memory&limit=1: the leaking worker');
$s = status('?sort=memory');
my @rss = map { $_->{rss} } @{ $s->{workers} };
is_deeply(\@rss, [ sort { $b <=> $a } @rss ], 'sort=memory: descending');
$s = status('?sort=jobs');
my @jobs = map { $_->{jobs_ok} + $_->{jobs_failed} } @{ $s->{workers} };
is_deeply(\@jobs, [ sort { $b <=> $a } @jobs ], 'sort=jobs: descending');
for my $k (qw(cpu queue restarts)) {
    is(http('GET', "/status?sort=$k")->{status}, 200, "sort=$k accepted");
}

$r = http('GET', '/status?sort=bogus');
is($r->{status}, 400, 'unknown sort: 400');
is($r->{json}{error}{code}, 'bad_sort', 'error code bad_sort');
$r = http('GET', '/status?limit=0');
is($r->{status}, 400, 'limit=0: 400');
is($r->{json}{error}{code}, 'bad_limit', 'error code bad_limit');
$r = http('GET', '/status?full=yes');
is($r->{status}, 400, 'full=yes: 400');
is($r->{json}{error}{code}, 'bad_full', 'error code bad_full');
is(http('POST', '/status', '{}')->{status}, 405, 'POST /status: 405');
is_deeply([ pipelined('/status?limit=0', '/status?sort=bogus', '/status') ],
    [ 400, 400, 200 ], 'a bad argument answers once and keeps the connection');

# ---- the latest crash reports, newest first, ten of them
my @crashed;
for (1 .. 12) {
    my $c = post_json('/jobs/crash', {});
    push @crashed, $c->{headers}{'x-offload-job-id'} if $c->{status} == 502;
}
is(scalar @crashed, 12, 'twelve jobs crashed their worker');
my @latest;
ok(wait_until(sub {
    @latest = map { $_->{job_id} } @{ status()->{crashes} || [] };
    @latest && $latest[0] eq $crashed[-1];
}, scaled(5), 'latest crash listed'), 'the newest crash comes first');
is_deeply(\@latest, [ reverse @crashed[2 .. 11] ],
    'the ten latest crash reports, newest first');
is(redis_cmd('LLEN', 'offload:{ctl}:crashes'), 10, 'offload:{ctl}:crashes keeps ten');
# sort=jobs counts every job a worker finished, crashed ones too (before:
# ok and failed only, so the crash worker sorted below the leak worker's
# one job)
sub finished { my $n = 0; $n += $_[0]{"jobs_$_"} // 0
    for qw(ok failed crashed cancelled expired); $n }
ok(wait_until(sub { my ($w) = grep { $_->{queue} eq 'crash' }
        @{ status()->{workers} || [] }; ($w->{jobs_crashed} // 0) == 12 },
    scaled(5), 'crashes counted'), 'the crash slot counts 12 crashed jobs');
@jobs = map { finished($_) } @{ status('?sort=jobs')->{workers} };
is_deeply(\@jobs, [ sort { $b <=> $a } @jobs ],
    'sort=jobs: descending by jobs finished, any result');

# ---- in flight, per-job resource use, timeouts
my $sock = send_post('/jobs/sleep', '{"ms":' . scaled(1500) . '}');
ok(wait_until(sub {
    (status()->{nginx}{queues}{sleep}{in_flight} // 0) == 1 }, scaled(5),
    'in flight'), 'a parked request is in flight');
my $ans = read_answer($sock);
is($ans->{status}, 200, 'sleep job answered');
counts_to(sub { status()->{nginx}{queues}{sleep}{in_flight} // -1 }, 0,
    'and no longer in flight');
$r = post_json('/jobs/echo', {});
like($r->{headers}{'server-timing'}, qr/cpu;dur=\d+\.\d{3}/,
    'Server-Timing carries the job\'s CPU time');

$r = post_json('/short/sleep', { ms => scaled(2000) });
is($r->{status}, 504, 'offload_timeout passed: 504');
counts_to(sub { status()->{nginx}{queues}{sleep}{timeouts} // 0 }, 1,
    'counted as a timeout');

# ---- Prometheus text
$r = http('GET', '/metrics');
is($r->{status}, 200, 'metrics answers 200');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'Prometheus text 0.0.4');
my $m = $r->{content};
like($m, qr/^# TYPE offload_requests_total counter$/m, 'TYPE line');
like($m, qr/^# HELP offload_requests_total \S/m, 'HELP line');
like($m, qr/^offload_requests_total\{queue="echo",status="200"\} \d+$/m,
    'requests by queue and status');
like($m, qr/^offload_request_seconds_bucket\{queue="echo",le="\+Inf"\} \d+$/m,
    'histogram buckets');
like($m, qr/^offload_job_run_seconds_sum\{queue="echo"\} [\d.]+$/m,
    'histogram sum');
like($m, qr/^offload_job_cpu_seconds_count\{queue="leak"\} 1$/m,
    'histogram count of the job CPU time');
like($m,
    qr/^offload_job_rss_growth_bytes_bucket\{queue="leak",le="67108864"\} 1$/m,
    'the 32 MB leak is in the RSS-growth bucket up to 64 MiB');
my $n = node_name();
like($m,
    qr/^offload_worker_rss_bytes\{node="\Q$n\E",queue="leak",slot="0"\} \d+$/m,
    'worker RSS labelled by node, queue, slot');
for my $result (qw(ok failed crashed cancelled expired)) {
    like($m, qr/^offload_worker_jobs_total\{node="\Q$n\E",queue="echo",
        slot="0",result="$result"\}[ ]\d+$/mx, "worker jobs: result $result");
}
like($m, qr/^offload_queue_backlog\{queue="echo"\} 0$/m, 'queue backlog');
like($m, qr/^offload_redis_up 1$/m, 'redis up');
like($m, qr/^offload_timeouts_total\{queue="sleep"\} 1$/m, 'timeouts');
like($m, qr/^offload_invalid_requests_total\{status="405"\} [1-9]\d*$/m,
    'invalid requests by status');
unlike($m, qr/^offload_invalid_requests_total\{status="200"\}/m,
    'no invalid request answered 200, none listed');

# every family is in README's list (handler metrics are named by handlers)
my $readme = slurp("$FindBin::Bin/../README.md");
my @families = grep { !/^offload_handler_/ } $m =~ /^# TYPE (\S+) /mg;
ok(@families > 20, scalar(@families) . ' families');
is_deeply([ grep { index($readme, "`$_`") < 0 && index($readme, "`$_\{") < 0 }
            @families ], [], 'README names every family');

my $file = tmpdir() . '/metrics.txt';
spew($file, $m);
my $out = `promtool check metrics < $file 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);

# ---- the script travels only when Redis lacks it: EVALSHA_RO, and after a
# SCRIPT FLUSH one EVAL_RO that caches it again
sub calls {
    my ($cmd) = @_;
    my ($n) = (redis_cmd('INFO', 'commandstats') // '')
        =~ /^cmdstat_\Q$cmd\E:calls=(\d+)/m;
    return $n // 0;
}
redis_cmd('SCRIPT', 'FLUSH');
my ($sha, $eval) = (calls('evalsha_ro'), calls('eval_ro'));
ok(wait_until(sub { calls('evalsha_ro') > $sha }, scaled(5),
    'a refresh after the flush'), 'the cached answer is refreshed');
my $reads = grep { my $d = status(); ref $d->{nodes} eq 'ARRAY' } 1 .. 10;
is($reads, 10, 'status reads with the nodes after a SCRIPT FLUSH');
# the admission's script (each second) and this one, each once per worker
ok(calls('eval_ro') - $eval <= 4,
    'the script itself is sent once per nginx worker at most');

# ---- a client that leaves while its status waits for Redis: Redis is
# made to sleep, the client closes, the reply then finds no request
my @workers = nginx_worker_pids();
my $sleeper = fork // die "fork: $!";
if ($sleeper == 0) {
    redis_cmd('DEBUG', 'SLEEP', '1');
    POSIX::_exit(0);
}
sleep 0.2;
for (1 .. 5) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $c "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    sleep 0.05;
    close $c;
}
waitpid($sleeper, 0);
ok(wait_until(sub { (status()->{redis} // '') eq 'ok' }, scaled(5),
    'status again'), 'status answers after clients left mid-request');
is_deeply([ sort { $a <=> $b } nginx_worker_pids() ],
    [ sort { $a <=> $b } @workers ],
    'no nginx worker died');
unlike(slurp(nginx_error_log()), qr/signal|alert/,
    'nothing alarming in the error log');

# ---- Redis away: the zone's part still answers.  The 504'd sleep job ends
# first: a worker whose completion cannot reach Redis is stopped only at
# shutdown_timeout (10 s).
ok(wait_until(sub { pending_jobs('sleep') == 0 }, scaled(10),
    'the timed-out sleep job ends'), 'no job in flight');
stop_redis();
ok(wait_until(sub { (status()->{redis} // '') eq 'unavailable' }, scaled(10),
    'redis unavailable'), 'status says redis is unavailable');
$s = status();
ok($s->{nginx}{queues}{echo}{requests}{200} > 0, 'with the nginx counters');
like(http('GET', '/metrics')->{content}, qr/^offload_redis_up 0$/m,
    'metrics: offload_redis_up 0');

finish();
