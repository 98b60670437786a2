#!/usr/bin/perl
# A job's XADD (or submit script) written to Redis whose reply never comes:
# the redis-server freezes (SIGSTOP) with the command in its socket, nginx's
# watchdog drops the connection, and Redis runs the command once it goes on.
# The answer is 503 outcome_unknown with the job's id, not 503
# redis_unavailable (which says nothing was queued): an async job's id is
# real (the jobs endpoint finds it, it runs), a sync job is cancelled by a
# command sent once nginx is connected again, an async job whose deadline
# passes first gets the same answer.  Commands still in nginx's buffer when
# the connection went were never run: those requests get
# redis_unavailable, and no job of theirs is in the stream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
CONF
# "idle": a queue nobody reads, so its jobs stay in the stream
redis_cmd('XGROUP', 'CREATE', 'offload:{idle}:jobs', 'workers', '$',
    'MKSTREAM');
start_nginx(workers => 1, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ { offload_jobs; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}', 1), 'stack ready');

# Runs $post with the redis-server frozen; returns its answer.
sub frozen {
    my ($post) = @_;
    kill 'STOP', redis_pid();
    my $r = eval { $post->() };
    kill 'CONT', redis_pid();
    die $@ if $@;
    return $r;
}

sub code { ($_[0]{json} && $_[0]{json}{error}{code}) // '' }

# A GET of the jobs endpoint once nginx is connected again.
sub job_once {
    my ($id, $pred) = @_;
    my $got;
    wait_until(sub {
        my $r = http('GET', "/jobs/$id?wait=1");
        $got = $r;
        $r->{status} == 200 && (!$pred || $pred->($r->{json}));
    }, scaled(20), "GET /jobs/$id");
    return $got;
}

# the submit script goes as EVALSHA: Redis knows it once a job used it
# (a frozen Redis would answer a first one NOSCRIPT: no job)
is(post_json('/async/echo', { n => 0 })->{status}, 202, 'an async job');

# ---- async: the reply is lost, the job is real
my $t0 = time;
my $r = frozen(sub { post_json('/async/echo', { n => 1 }, scaled(15)) });
is($r->{status}, 503, 'async, reply lost: 503') or diag($r->{content});
is(code($r), 'outcome_unknown', 'code outcome_unknown, not redis_unavailable');
like($r->{json}{error}{message},
    qr/lost after the job was sent.*may have been queued/,
    'the message says the job may have been queued');
my $id = $r->{json}{error}{id} // '';
like($id, qr/^[0-9a-f]{32}$/, 'with the job id');
is($r->{headers}{'x-offload-job-id'}, $id, 'X-Offload-Job-Id too');
is($r->{json}{error}{status_url}, "/jobs/$id", 'and its status URL');
is($r->{headers}{'retry-after'}, 1, 'Retry-After: 1');
diag(sprintf 'answered after %.2f s: %s', time - $t0, $r->{content});
my $job = job_once($id, sub { ($_[0]{status} // '') eq 'done' });
is($job->{json}{status}, 'done', 'the job was queued and ran')
    or diag($job->{content});
is_deeply($job->{json}{result}, { n => 1 }, 'its result');

# ---- sync: the reply is lost, the job is cancelled after the reconnect
$r = frozen(sub { post_json('/sync/idle', { n => 2 }, scaled(15)) });
is($r->{status}, 503, 'sync, reply lost: 503') or diag($r->{content});
is(code($r), 'outcome_unknown', 'code outcome_unknown');
like($r->{json}{error}{message}, qr/cancelled unless a worker has taken it/,
    'the message says it is cancelled');
$id = $r->{json}{error}{id} // '';
like($id, qr/^[0-9a-f]{32}$/, 'with the job id');
ok(!exists $r->{json}{error}{status_url}, 'no status URL: no record');
ok(wait_until(sub {
    grep { ($_->{id} // '') eq $id }
        @{ stream_entries('offload:{idle}:jobs') };
}, scaled(10), 'job in the stream'), 'Redis ran the XADD: the job was queued');
ok(wait_until(sub {
    defined redis_cmd('ZSCORE', 'offload:{idle}:cancelled', $id);
}, scaled(10), 'cancelled'), 'nginx cancelled it once connected again');

# ---- async, its deadline passes before Redis acknowledges the job
$t0 = time;
$r = frozen(sub {
    http('POST', '/async/echo', '{"n":3}', { 'X-Offload-Timeout' => '0.3' },
        scaled(15));
});
is($r->{status}, 503, 'async, deadline first: 503') or diag($r->{content});
is(code($r), 'outcome_unknown', 'code outcome_unknown, not 504 timeout');
like($r->{json}{error}{message}, qr/before its deadline/,
    'the message says why');
ok(time - $t0 < scaled(1.5), 'at the deadline');
$id = $r->{json}{error}{id} // '';
like($id, qr/^[0-9a-f]{32}$/, 'with the job id');
$job = job_once($id);
is($job->{json}{id}, $id, 'the jobs endpoint knows it once Redis goes on')
    or diag($job->{content});

# ---- commands nginx had not written when the connection went (Redis
# stopped reading, the socket full): never run
my $pad = 'x' x 1_000_000;
my @got = @{ frozen(sub { [ concurrent_posts(24, 1,
    sub { qq({"c":$_[0],"pad":"$pad"}) }, path => '/sync/idle',
    timeout => scaled(30)) ] }) };
my (%codes, %unknown);
for my $g (@got) {
    my $j = json_decode($g->{content} // '') // {};
    my $c = ($j->{error} && $j->{error}{code}) // "status $g->{status}";
    $c .= ' (not sent)'
        if ($j->{error}{message} // '') =~ /before the job was sent/;
    $codes{$c}++;
    $unknown{ $j->{error}{id} } = 1 if $c eq 'outcome_unknown';
}
diag(explain \%codes);
ok($codes{outcome_unknown}, 'some were written: outcome_unknown');
ok($codes{'redis_unavailable (not sent)'},
    'some were not: redis_unavailable, "before the job was sent"');
is(scalar(grep { !/^(outcome_unknown|redis_unavailable)/ } keys %codes), 0,
    'no other answer');
# Redis reads what the frozen connections hold once it goes on: the jobs
# in the stream stay as they are for a second.  Whether any lands is up to
# TCP (a connection closed with a reset loses what Redis had not read:
# 'may have been queued'); none may be one answered redis_unavailable
my @landed;
my ($seen, $since) = (-1, time);
ok(wait_until(sub {
    @landed = grep { ($_->{payload} // '') =~ /"pad"/ }
        @{ stream_entries('offload:{idle}:jobs') };
    ($seen, $since) = (scalar @landed, time) if @landed != $seen;
    time - $since >= 1;
}, scaled(15), 'the stream settles'), 'the stream settles');
diag(scalar(@landed) . " of $codes{outcome_unknown} answered outcome_unknown "
    . 'landed');
my @stray = grep { !$unknown{ $_->{id} } } @landed;
is(scalar @stray, 0, 'every job in the stream was answered outcome_unknown: '
    . 'none answered redis_unavailable was queued')
    or diag(join ' ', map { $_->{id} } @stray);

finish();
