#!/usr/bin/perl
# The sidecar (supervisor and workers) and nginx with the module under
# valgrind: a few jobs of each handler, a worker restart, a stop.  No memory
# errors anywhere; no definite leaks in the sidecar (nginx leaves its pools
# to the exit, and stock nginx leaks in regex locations, so leaks are not
# counted there).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use Valgrind;

skip_unless_valgrind();

my $dir = tmpdir();
start_redis();
my @valgrind = ('valgrind', '--error-exitcode=99', '--leak-check=full',
    '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite');
my $supervisor = start_sidecar(timeout => 60, wrapper => [ @valgrind,
    '--trace-children=yes', "--log-file=$dir/valgrind.%p.log" ],
    conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue sha256 { handler sha256; workers 1; }
queue spin { handler spin; workers 1; }
queue sleep { handler sleep; workers 1; }
queue events.aggregate { handler events.aggregate; workers 1; }
CONF
ok(start_jobs_nginx(workers => 1, timeout => 60, wrapper => [ 'valgrind',
    '--error-exitcode=99', "--log-file=$dir/nginx-valgrind.%p.log" ],
    server => "client_max_body_size 4m;\n"
        . "location = /status { offload_status; }\n"
        . "location = /metrics { offload_metrics; }\n"
        . "location = /dash { offload_dashboard; }\n"
        . 'location ~ ^/async/([^/]+)$ { offload_pass $1; '
        . "offload_mode async; }\n"
        . "location /job/ { offload_jobs; }\n"
        . "location = /nginx_status { stub_status; }\n"
        . 'location ~ ^/brief/([^/]+)$ { offload_pass $1; '
        . "offload_timeout 500ms; }"),
    'stack ready');

my @jobs = (
    [ echo => { a => [1, { b => 'c' }] }, 200 ],
    [ echo => '"x"', 200 ],
    [ sha256 => { data => 'abc', rounds => 10 }, 200 ],
    [ sha256 => { data => 'abc', rounds => 'x' }, 422 ],
    [ spin => { ms => 5 }, 200 ],
    [ spin => { ms => -1 }, 422 ],
    [ sleep => { ms => 5 }, 200 ],
    [ sleep => [], 422 ],
    [ 'events.aggregate' => [ map { { type => "t" . $_ % 3, value => $_,
        ts => $_ } } 1 .. 100 ], 200 ],
    [ 'events.aggregate' => [ { type => 1 } ], 422 ],
);
for my $round (1 .. 2) {
    for my $job (@jobs) {
        my ($q, $in, $status) = @$job;
        my $r = post_json("/jobs/$q", $in);
        is($r->{status}, $status, "$q: $status (round $round)")
            or diag($r->{content});
    }
}

# a body and a result over 1 MB: the sliced JSON check, the body key's
# slices on the bulk link, the result notice and its LINDEXes; a late JSON
# error in a big body
my $big = '{"data":"' . ('v' x (2 * 2**20)) . '"}';
my $r = http('POST', '/jobs/echo', $big);
ok($r->{status} == 200 && $r->{content} eq $big,
    '2 MB echo: the same back');
$r = http('POST', '/jobs/echo', substr($big, 0, -1));
is($r->{status}, 400, '2 MB of bad JSON: 400');

# into a queue nobody reads: the body key holds it; a big result, a list
# staged as a worker stores it, read after a notice and by the last look;
# then a job whose deadline passes while Redis holds writes back: its
# slices withdrawn, its key unlinked (a command of the link's own)
redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers', '$',
    'MKSTREAM');
my $sp = send_post('/jobs/parked', $big);
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{parked}:jobs') == 1 }, 30,
    'parked job'), '2 MB into a queue nobody reads: XADDed');
my $id = stream_entries('offload:{parked}:jobs')->[0]{id} // '';
my $list = redis_cmd('LRANGE', "offload:{parked}:body:$id", 0, -1);
ok(ref $list eq 'ARRAY' && join('', @$list) eq $big,
    'and its body key holds it');
close $sp;
for my $case ([ '/jobs/parked', 1 ], [ '/brief/parked', 0 ]) {
    my ($path, $notice) = @$case;
    my $a = parked_list_answer($path, $big, $notice, 30);
    ok($a->{status} == 200 && ($a->{content} // '') eq $big,
        'a 2 MB list result read back ('
        . ($notice ? 'notice' : 'last look') . ')');
}
redis_cmd('CLIENT', 'PAUSE', 30000, 'WRITE');
$r = http('POST', '/brief/parked', $big);
redis_cmd('CLIENT', 'UNPAUSE');
is($r->{status}, 504, '2 MB past its deadline mid-upload: 504');
ok(wait_until(sub {
    @{ redis_cmd('KEYS', 'offload:{parked}:body:*') } == 1 }, 30,
    'late body key unlinked'), 'and its body key unlinked');

# long polls parked without their requests: one answered when its job
# ends, one whose client leaves first (ngx_http_offload_poll.c)
$r = post_json('/async/sleep', { ms => 3000 });
is($r->{status}, 202, 'an async sleep job: 202');
$id = $r->{json}{id} // '';
my $calls = evalsha_calls();
my $poll = keepalive_get("/job/$id?wait=30");
my $left = keepalive_get("/job/$id?wait=30");
ok(wait_until(sub {
    evalsha_calls() >= $calls + 2 && nginx_writing() == 1;
}, 30, 'polls parked'), 'two polls read their job\'s record and park');
close $left;
$r = next_answer($poll, 30);
is($r && $r->{json}{status}, 'done', 'the other is answered: done');
$r = next_answer(keepalive_get("/job/$id", $poll), 30);
is($r && $r->{status}, 200, 'and its connection serves the next request');
close $poll;

# the observability locations, under valgrind too
# (jobs_per_s counts the last few heartbeats: one more job, lest the big
# ones above under valgrind took longer than those)
post_json('/jobs/echo', { figures => 1 });
ok(wait_until(sub { (node_doc()->{queues}{echo}{jobs_per_s} // 0) > 0 },
    30, 'figures'), 'the node reports its figures');
for my $path ('/status?sort=memory&limit=2', '/status?sort=x', '/metrics',
              '/dash', '/dash?status&sort=jobs') {
    my $r = http('GET', $path);
    like($r->{status}, qr/^(200|400)$/, "GET $path: $r->{status}");
}
is(scalar @{ http('GET', '/status?limit=2')->{json}{workers} }, 2,
    'status limited to two workers');
# the default answers, kept and answered again, plain, gzip'd and HEAD
for my $path ('/status', '/metrics') {
    for my $how (['GET'], ['HEAD', 'gzip'], ['GET', 'gzip'], ['GET', 'gzip'],
                 ['HEAD', 'gzip'], ['GET']) {
        my ($method, $ae) = @$how;
        my $r = http($method, $path, undef,
            $ae ? { 'accept-encoding' => $ae } : undef);
        is($r->{status}, 200, "$method $path" . ($ae ? " ($ae)" : '')
            . ': 200');
    }
}

# a worker killed and replaced under valgrind too
my $pids = worker_pids();
kill 'KILL', $pids->{echo}[0];
ok(wait_until(sub {
    my $p = worker_pids() or return 0;
    $p->{echo}[0] && $p->{echo}[0] != $pids->{echo}[0];
}, 30, 'echo worker replaced'), 'echo worker replaced');
ok(wait_until(sub { post_json('/jobs/echo', {})->{status} == 200 }, 30,
    'new echo worker answers'), 'new echo worker answers');

stop_nginx();
my $status = stop_sidecar(60);
is($status, 0, 'sidecar under valgrind exited 0 (not 99)')
    or diag("wait status $status");

my @logs = glob("$dir/valgrind.*.log");
ok(@logs >= 6, scalar(@logs) . ' valgrind logs (supervisor + workers)');
for my $log (@logs) {
    my $text = slurp($log);
    (my $name = $log) =~ s{.*/}{};
    next if $name eq "valgrind.$pids->{echo}[0].log";   # the SIGKILLed one
    my ($who) = $text =~ /^==\d+== Parent PID: (\d+)/m;
    $name .= ($who // 0) == $supervisor ? ' (worker)'
        : ' (supervisor)';
    ok($text !~ /ERROR SUMMARY: [1-9]/, "$name: no errors")
        or diag(first_records($text));
    ok($text !~ /definitely lost: [1-9]/, "$name: no definite leaks");
}

my @nginx_logs = glob("$dir/nginx-valgrind.*.log");
ok(@nginx_logs >= 2, scalar(@nginx_logs)
    . ' nginx valgrind logs (master + worker)');
for my $log (@nginx_logs) {
    my $text = slurp($log);
    (my $name = $log) =~ s{.*/}{};
    ok($text !~ /ERROR SUMMARY: [1-9]/, "$name: no errors")
        or diag(first_records($text));
}

finish();
