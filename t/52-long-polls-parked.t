#!/usr/bin/perl
# Long polls parked without their nginx request (ngx_http_offload_poll.c,
# docs/HTTP_API.md): a keep-alive GET <jobs>/<id>?wait= whose job runs
# holds no request while it waits (stub_status: no request of it is
# Writing), and comes back as one request when its job ends or its wait
# passes: answered on the same connection, which stays usable, and logged
# once with its whole time.  A client that leaves is noticed at once and
# its poll logged 499; a request sent behind a parked poll is answered
# after it; a lost subscription brings parked polls back to read again;
# 300 parked polls are all answered; an nginx reload lets the old worker
# answer its parked poll.  Polls that cannot be parked (Connection: close)
# are t/52-long-polls'.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 4; }
CONF
start_nginx(workers => 1, level => 'info', http => <<'HTTP');
log_format polls '$request_uri $status $request_time';
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ {
        offload_jobs;
        access_log @DIR@/polls.log polls;
    }
    location = /nginx_status { stub_status; }
    location /via/ { try_files /nothing @jobs; }
    location @jobs { offload_jobs; }
}
HTTP
ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1), 'stack ready');
my ($worker) = nginx_worker_pids();
my $polls_log = tmpdir() . '/polls.log';

sub connect_nginx {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    return $s;
}

# parked: its record read, no request of it held, and no answer on @s yet
sub parked {
    my ($evals, $n, $what, @s) = @_;
    return wait_until(sub {
        evalsha_calls() >= $evals + $n && nginx_writing() == 1;
    }, scaled(15), $what) && !IO::Select->new(@s)->can_read(0);
}

# the access log's lines of the polls of job $id
sub log_lines {
    my ($id) = @_;
    return grep { index($_, "/jobs/$id?wait=") == 0 } split /\n/,
        slurp($polls_log);
}

# once nginx has logged the poll it has just answered
sub logged {
    my ($id) = @_;
    wait_until(sub { log_lines($id) }, scaled(5),
        "the poll of job $id logged");
    return log_lines($id);
}

# -- a poll parks, and comes back when its job ends --------------------------
my $id = running_sleep_job(2500);
my $evals = evalsha_calls();
my $t0 = time;
my $s = keepalive_get("/jobs/$id?wait=30");
ok(parked($evals, 1, 'the poll parked', $s),
    'a keep-alive poll of a running job holds no request while it waits')
    or diag('Writing: ' . nginx_writing());
is(scalar(log_lines($id)), 0, 'nothing logged of it yet');

my $a = next_answer($s, scaled(15));
ok($a, 'the job ends: the poll answers');
is($a->{status}, 200, 'it answers 200');
is($a->{json}{status}, 'done', 'status done');
is($a->{json}{id}, $id, 'its own job');
my $waited = time - $t0;
cmp_ok($waited, '>', 1, "after the job's end ($waited s)");

$a = next_answer(keepalive_get("/jobs/$id", $s), scaled(10));
is($a && $a->{status}, 200, 'the same connection serves the next request');
is($a && $a->{json}{status}, 'done', 'which reads the job');

my @lines = logged($id);
is(scalar(@lines), 1, 'one access log line for the poll')
    or diag(slurp($polls_log));
my ($uri, $code, $rt) = split ' ', $lines[0] // '';
is("$uri $code", "/jobs/$id?wait=30 200", 'the poll logged with its answer');
cmp_ok($rt, '>=', $waited - 1,
    'and its whole time, from its first request ($request_time)');
close $s;

# -- its wait passes first ---------------------------------------------------
my $long = running_sleep_job(30000);
$evals = evalsha_calls();
$t0 = time;
$s = keepalive_get("/jobs/$long?wait=2");
ok(parked($evals, 1, 'the poll parked', $s), 'a poll of a long job parks');
$a = next_answer($s, scaled(10));
my $took = time - $t0;
is($a && $a->{status}, 200, 'its wait passes: 200');
is($a && $a->{json}{status}, 'running', 'with the job as it is: running');
cmp_ok($took, '>=', 1.9, "not before its wait ($took s)");
cmp_ok($took, '<', scaled(6), 'nor long after');
@lines = logged($long);
($uri, $code, $rt) = split ' ', $lines[0] // '';
is(scalar(@lines), 1, 'logged once');
cmp_ok($rt, '>=', 1.9, 'with its whole time');

# -- the client leaves (once the next section is over) ------------------------
$evals = evalsha_calls();
my $gone = keepalive_get("/jobs/$long?wait=30");
ok(parked($evals, 1, 'the poll parked', $gone), 'another poll parks');
my $t1 = time;

# -- a request behind a parked poll ------------------------------------------
$id = running_sleep_job(2500);
$evals = evalsha_calls();
$s = keepalive_get("/jobs/$id?wait=30");
ok(parked($evals, 1, 'the poll parked', $s), 'a poll parks');
keepalive_get('/nginx_status', $s);
ok(!IO::Select->new($s)->can_read(0.5),
    'a request sent behind it waits for its answer');
$a = next_answer($s, scaled(15));
is($a && $a->{json}{status}, 'done', 'the poll answers first: done');
$a = next_answer($s, scaled(10));
like($a && $a->{content}, qr/Active connections/,
    'then the request behind it');
close $s;

close $gone;
my $t2 = time;
ok(wait_until(sub {
    slurp(nginx_error_log())
        =~ /client prematurely closed connection, poll of job $long/;
}, scaled(10), 'the close noticed'), 'a client that leaves is noticed');
ok(wait_until(sub { log_lines($long) == 2 }, scaled(5), 'logged'),
    'and its poll logged');
($uri, $code, $rt) = split ' ', (log_lines($long))[1] // '';
is($code, 499, 'as a poll whose client left is: 499');
cmp_ok($rt, '>=', $t2 - $t1 - 0.05, 'with its whole time');

# -- the subscription drops: parked polls read again and park again ----------
$id = running_sleep_job(4000);
$evals = evalsha_calls();
$s = keepalive_get("/jobs/$id?wait=30");
ok(parked($evals, 1, 'the poll parked', $s), 'a poll parks');
$evals = evalsha_calls();
redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
ok(parked($evals, 1, 'the poll back and parked again', $s),
    'the subscription lost and back: the parked poll reads again, parks '
    . 'again');
ok(!IO::Select->new($s)->can_read(0), 'and has no answer yet');
$a = next_answer($s, scaled(15));
is($a && $a->{json}{status}, 'done', 'then its job ends: done');
close $s;

# -- polls that wait holding their requests ----------------------------------
# one with a body (discarded: its head would promise a body again), one
# redirected inside nginx (its head would go through the redirect again)
$id = running_sleep_job(2500);
$evals = evalsha_calls();
my $bodied = connect_nginx();
print $bodied "GET /jobs/$id?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    . "Content-Length: 5\r\n\r\nhello";
my $via = keepalive_get("/via/$id?wait=30");
ok(wait_until(sub {
    evalsha_calls() >= $evals + 2 && nginx_writing() == 3;
}, scaled(10), 'two polls held'),
    'a poll with a body and a redirected one hold their requests');
for my $case ([ 'with a body', $bodied ], [ 'redirected', $via ]) {
    my ($what, $s) = @$case;
    $a = next_answer($s, scaled(15));
    is($a && $a->{json}{status}, 'done', "the poll $what answers: done");
    $a = next_answer(keepalive_get('/nginx_status', $s), scaled(10));
    like($a && $a->{content}, qr/Active connections/,
        "and its connection serves the next request");
    close $s;
}

# one that says Expect: 100-continue is parked, and never told 100: the jobs
# endpoint asks for no body, however often a woken poll is run again
$id = running_sleep_job(2500);
$evals = evalsha_calls();
$s = connect_nginx();
print $s "GET /jobs/$id?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    . "Expect: 100-continue\r\n\r\n";
ok(parked($evals, 1, 'the poll parked'), 'a poll that expects 100 parks');
my $raw = '';
ok(wait_until(sub {
    sysread($s, $raw, 65536, length $raw) if IO::Select->new($s)
        ->can_read(0.1);
    $raw =~ /\r\n\r\n\{.*\}\z/s;
}, scaled(15), 'its answer'), 'its job ends: it answers');
my @continues = $raw =~ /^HTTP\/1\.1 100 Continue\r\n/mg;
is(scalar(@continues), 0, 'with no 100 Continue before it');
like($raw, qr/"status":"done"/, 'done');
close $s;

# -- many ---------------------------------------------------------------------
$id = running_sleep_job(3000);
$evals = evalsha_calls();
my @many = map { keepalive_get("/jobs/$id?wait=30") } 1 .. 300;
ok(parked($evals, 300, '300 polls parked', @many), '300 polls park');
my $done = grep {
    my $r = next_answer($_, scaled(20));
    $r && $r->{status} == 200 && ($r->{json}{status} // '') eq 'done';
} @many;
is($done, 300, 'the job ends: all 300 answer done');
close $_ for @many;

is((nginx_worker_pids())[0], $worker, 'the same nginx worker all along');

# -- a reload: the old worker keeps its parked poll until it answers ---------
$id = running_sleep_job(2500);
$evals = evalsha_calls();
$s = keepalive_get("/jobs/$id?wait=30");
ok(parked($evals, 1, 'the poll parked', $s), 'a poll parks');
kill 'HUP', nginx_pid();
$a = next_answer($s, scaled(15));
is($a && $a->{json}{status}, 'done',
    'nginx reloads: the old worker answers its parked poll when its job '
    . 'ends');
ok(wait_until(sub { !kill 0, $worker }, scaled(10), 'old worker gone'),
    'then exits');
close $s;
unlike(slurp(nginx_error_log()), qr/\[(alert|crit|emerg)\]/,
    'no alert in the error log');

stop_all();
done_testing();
