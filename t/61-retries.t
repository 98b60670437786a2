#!/usr/bin/perl
# Retries of transient failures (offload_job_retry, an exec handler's
# Retry): the job waits in its queue's retry set in Redis, not in a
# worker, for retry_backoff (doubling, equal jitter), while max_attempts
# and its deadline allow; a sync client keeps waiting and gets the final
# answer.  Out of attempts, the job is a dead letter (reason
# retries_exhausted) answered with its last failure (422 and the handler's
# code), its async record "dead", and `offloadctl retry` runs it again;
# with its next attempt past its deadline, the failure is the answer at
# once and no dead letter.  Retries survive a sidecar restart; two nodes
# moving them back never run a job twice; an async job's record shows
# "retrying".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

my $py = '/usr/bin/python3';
my $count = "$py $FindBin::Bin/exec/retry_count.py";
my $node = -x '/usr/bin/node' ? '/usr/bin/node' : '/usr/bin/nodejs';
my $node_count = "$node $FindBin::Bin/exec/retry_count.js";
my $queues = <<"CONF";
fault_handlers on;
queue grow { handler exec; command "$count"; max_attempts 5;
             retry_backoff 1s 10s; }
queue few { handler fail_until; max_attempts 3; retry_backoff 100ms 200ms; }
queue late { handler fail_until; max_attempts 5; retry_backoff 10s 10s; }
queue wait { handler fail_until; max_attempts 5; retry_backoff 2s 2s; }
queue two { handler exec; command "$count"; workers 2; max_attempts 3;
            retry_backoff 50ms 100ms; }
queue node { handler exec; command "$node_count"; max_attempts 3;
             retry_backoff 50ms 100ms; }
queue echo { handler echo; workers 1; }
CONF

start_redis();
start_sidecar(conf => $queues);
ok(start_jobs_nginx(server => <<'SERVER'), 'stack ready');
    offload_timeout 30s;
    location = /late { offload_pass late; offload_timeout 3s; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs-api/ { offload_jobs; }
    offload_jobs_url /jobs-api/;
SERVER
my $dir = tmpdir();
my $log = "$dir/sidecar.log";

# "<id> <attempt> <ms>" lines of retry_count.py's log, by job id.
sub runs {
    my ($file) = @_;
    my %runs;
    for (split /\n/, slurp($file) // '') {
        my ($id, $attempt, $ms) = split / /;
        push @{ $runs{$id} }, [ $attempt, $ms ];
    }
    return \%runs;
}

sub retry_set { redis_cmd('ZCARD', "offload:{$_[0]}:retry") }

# ---- fails twice for now, then succeeds: the sync client gets 200
my $runs = "$dir/grow.runs";
my $r = post_json('/jobs/grow', { ok_at => 3, log => $runs }, scaled(30));
is($r->{status}, 200, 'grow: 200 after two retries') or diag($r->{content});
is($r->{json} && $r->{json}{attempt}, 3, 'grow: answered by attempt 3');
is($r->{json} && $r->{json}{ran_before}, 1, 'grow: which the handler is '
    . 'told may follow an earlier run (ran_before)');
my $first = post_json('/jobs/grow', { log => "$dir/first.runs" });
is($first->{json} && $first->{json}{ran_before}, 0, '... a first run is not')
    or diag($first->{content});
my ($id) = keys %{ runs($runs) };
my @at = map { $_->[1] } @{ runs($runs)->{$id} // [] };
is(scalar @at, 3, 'grow: three runs');
my @gap = map { $at[$_] - $at[$_ - 1] } 1 .. $#at;
diag("grow: gaps between attempts @gap ms (retry_backoff 1s 10s)");
my @delay = slurp($log) =~ /job \Q$id\E failed for now .* in (\d+) ms/g;
is(scalar @delay, 2, 'grow: two retries logged with their delays');
diag("grow: scheduled delays @delay ms");
ok($delay[0] >= 500 && $delay[0] <= 1000, "grow: first delay in 0.5..1 s");
ok($delay[1] >= 1000 && $delay[1] <= 2000, "grow: second in 1..2 s");
ok($delay[1] >= $delay[0], 'grow: the delays grow');
ok($gap[0] >= $delay[0] && $gap[0] <= $delay[0] + scaled(700),
    "grow: the first retry ran after its delay ($gap[0] ms)");
ok($gap[1] >= $delay[1] && $gap[1] <= $delay[1] + scaled(700),
    "grow: the second after its own ($gap[1] ms)");
is(retry_set('grow'), 0, 'grow: the retry set is empty again');
ok(slurp($log) =~ /job \Q$id\E failed for now \(not_yet: attempt 1 is too/,
    'grow: a log line per retry, with the job id and the reason');
ok(wait_until(sub { node_doc()->{queues}{grow}{retries} == 2 }, scaled(5),
    'grow retries counted'), 'grow: the registry counts 2 retries');

# ---- the Node helper's Retry
$r = post_json('/jobs/node', { ok_at => 3, log => "$dir/node.runs" },
    scaled(30));
is($r->{status}, 200, 'node: 200') or diag($r->{content});
is($r->{json} && $r->{json}{attempt}, 3, 'node: after two retries');
is($r->{json} && $r->{json}{ran_before}, 1, 'node: job.ranBefore');

# ---- out of attempts: a dead letter, answered with the last failure
# (422 with its code)
$r = post_json('/jobs/few', { attempt_ok => 5 }, scaled(30));
is($r->{status}, 422, 'few: 422 once out of attempts') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'not_yet',
    'few: the handler\'s code');
like($r->{json} && $r->{json}{error}{message}, qr/^attempt 3 fails/,
    'few: from the third and last attempt');
ok($r->{ms} >= 150, "few: after two backoffs ($r->{ms} ms)");
my $dead = stream_entries('offload:{few}:dead');
is(scalar @$dead, 1, 'few: a dead letter');
is($dead->[0]{reason}, 'retries_exhausted', 'few: reason retries_exhausted');
is($dead->[0]{attempt}, 3, 'few: its last attempt, 3');
is_deeply(json_decode($dead->[0]{payload} // 'null'), { attempt_ok => 5 },
    'few: with its payload');
my $report = json_decode($dead->[0]{report} // '{}') || {};
is_deeply([ @$report{qw(code attempts queue)} ], [ 'not_yet', 3, 'few' ],
    'few: its report has the handler\'s code, the attempts, the queue')
    or diag(explain $report);
like($report->{message} // '', qr/^attempt 3 fails/,
    'few: and the handler\'s message');
is(retry_set('few'), 0, 'few: nothing waits in its retry set');
ok(wait_until(sub { (node_doc()->{queues}{few}{dead} // 0) == 1 },
    scaled(5), 'few dead counted'), 'few: the registry counts it');
my $ctl = build_path('offloadctl') . ' -r 127.0.0.1:' . redis_port();
my $few_id = $dead->[0]{id} // 'none';
like(`$ctl dead few`, qr/ \Q$few_id\E\s+3\s+retries_exhausted /,
    'few: offloadctl dead lists it');

# an async job: its record ends "dead", GET shows the handler's failure,
# and `offloadctl retry` runs it again (three attempts more)
my $dead_runs = "$dir/dead.runs";
my $ar = post_json('/async/two', { ok_at => 9, log => $dead_runs });
is($ar->{status}, 202, 'dead async: 202');
my $durl = $ar->{headers}{location} // '/none';
my $dst = http('GET', "$durl?wait=10", undef, undef, 15)->{json} // {};
is($dst->{status}, 'dead', 'dead async: status dead') or diag(explain $dst);
is($dst->{error} && $dst->{error}{code}, 'not_yet',
    'dead async: the handler\'s failure');
is($dst->{attempts}, 3, 'dead async: after 3 attempts');
my ($did) = $durl =~ m{([^/]+)$};
is(scalar @{ runs($dead_runs)->{$did} // [] }, 3, 'dead async: ran 3 times');
my $drec = 'offload:job:{' . substr($did, 11, 5) . "}:$did";
my $retried_at = int(time * 1000);
my $rout = `$ctl retry two $did 2>&1`;
like($rout, qr/retried 1 dead letter/, 'offloadctl retry puts it back')
    or diag($rout);
my %drh = @{ redis_cmd('HGETALL', $drec) // [] };
ok(($drh{status} // '') ne 'dead' || ($drh{finished_at} // 0) >= $retried_at,
    'retried: its record is not dead any more (' . ($drh{status} // '-')
    . ')') or diag(explain \%drh);
ok(wait_until(sub { @{ runs($dead_runs)->{$did} // [] } == 6
    && grep { $_->{id} eq $did && $_->{reason} eq 'retries_exhausted' }
        @{ stream_entries('offload:{two}:dead') } }, scaled(15),
    'retried job dead again'),
    'retried: it ran three attempts more, then was a dead letter again')
    or diag(explain runs($dead_runs)->{$did});
is(join(',', map { $_->[0] } @{ runs($dead_runs)->{$did} // [] }),
    '1,2,3,1,2,3', 'retried: from attempt 1 again');
ok(wait_until(sub { %drh = @{ redis_cmd('HGETALL', $drec) // [] };
        ($drh{status} // '') eq 'dead'
        && ($drh{finished_at} // 0) >= $retried_at }, scaled(5),
    'record dead again'),
    'retried: its record followed the new run, dead again at its end')
    or diag(explain \%drh);
is($drh{attempts}, 3, 'retried: its record counts the new run\'s attempts');

# ---- the next attempt would come after the deadline: fails now
$r = post_json('/late', { attempt_ok => 2 }, scaled(30));
is($r->{status}, 422, 'late: 422') or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'not_yet', 'late: the handler\'s '
    . 'code');
ok($r->{ms} < 2000, "late: answered at once ($r->{ms} ms), not at its 3 s "
    . 'deadline: its next attempt would come 5..10 s on');
is(retry_set('late'), 0, 'late: nothing waits in its retry set');
is(redis_cmd('XLEN', 'offload:{late}:dead'), 0,
    'late: out of time, not of attempts: not a dead letter');

# ---- async record: status retrying, next_attempt_at, attempts
my $aid = 'feedfacefeedface0000000000000001';
redis_cmd('HSET', record_key($aid), queue => 'wait', status => 'queued',
    attempts => 0);
my $t0 = int(time * 1000);
redis_cmd('XADD', 'offload:{wait}:jobs', '*', v => 1, id => $aid,
    payload => '{"attempt_ok":2}', submitted => $t0);
ok(wait_until(sub { retry_set('wait') == 1 }, scaled(10), 'wait retrying'),
    'wait: the job waits in the retry set');
my %rec = @{ redis_cmd('HGETALL', record_key($aid)) };
is($rec{status}, 'retrying', 'record: status retrying');
is($rec{attempts}, 1, 'record: one attempt made');
ok($rec{next_attempt_at} >= $t0 + 1000
    && $rec{next_attempt_at} <= int(time * 1000) + 2000,
    'record: next_attempt_at 1..2 s on');
my ($member, $score) = @{ redis_cmd('ZRANGE', 'offload:{wait}:retry', 0, -1,
    'WITHSCORES') };
ok(wait_until(sub { node_doc()->{queues}{wait}{retrying} == 1 }, scaled(5),
    'registry retrying'), 'the registry shows the job in the retry set');
like(`@{[ build_path('offloadctl') ]} -r 127.0.0.1:@{[ redis_port() ]} queues`,
    qr/^QUEUE .* RETRY\n(?:.*\n)*wait .* 1\n/m,
    'offloadctl queues shows it in its RETRY column');
is($score, $rec{next_attempt_at}, 'the retry set scores the same time');
ok(wait_until(sub { redis_cmd('EXISTS', "offload:{wait}:result:$aid") },
    scaled(10), 'wait result'), 'wait: done by its second attempt');
like(redis_cmd('GET', "offload:{wait}:result:$aid"), qr/"attempt":2/,
    'wait: its result');
is(redis_cmd('EXISTS', record_key($id)), 0,
    'a sync job got no record');

# ---- the same through nginx: an async job's status says retrying, with
# its next attempt, then done after it
$ar = post_json('/async/wait', { attempt_ok => 2 });
is($ar->{status}, 202, 'async job on a retrying queue: 202');
my $url = $ar->{headers}{location} // '/none';
my $st;
ok(wait_until(sub { $st = http('GET', $url)->{json};
    ($st->{status} // '') eq 'retrying' }, scaled(10), 'async retrying'),
    'GET: status retrying') or diag(explain($st));
ok(($st->{next_attempt_at} // 0) > time * 1000,
    'with its next attempt time, ahead');
$st = http('GET', "$url?wait=10", undef, undef, 15)->{json} // {};
is($st->{status}, 'done', 'then done') or diag(explain($st));
is($st->{attempts}, 2, 'after 2 attempts');
is_deeply($st->{result}, { attempt => 2 }, 'with the result of the 2nd');
# (before: the time of the attempt it ran, earlier than finished_at)
is($st->{next_attempt_at}, undef, 'no next attempt: next_attempt_at null');

# ---- retries wait in Redis: they survive a sidecar restart
my $s = send_post('/jobs/wait', '{"attempt_ok":2}');
ok(wait_until(sub { retry_set('wait') == 1 }, scaled(10), 'retrying'),
    'restart: the job waits in the retry set');
stop_sidecar();
ok(!alive('sidecar'), 'restart: the sidecar is stopped');
is(retry_set('wait'), 1, 'restart: the retry is still in Redis');
start_sidecar(conf => $queues);
my $a = read_answer($s, scaled(20));
is($a->{status}, 200, 'restart: the waiting client gets 200')
    or diag($a->{content});
like($a->{content}, qr/"attempt":2/, 'restart: from the second attempt');

# ---- two nodes move retries back: each job runs once per attempt
my $conf_b = "$dir/node-b.conf";
spew($conf_b, "redis 127.0.0.1:" . redis_port() . ";\nnode_name other$$;\n"
    . "log $dir/node-b.log info;\nheartbeat 200ms;\n$queues");
my $b = fork // die "fork: $!";
if ($b == 0) {
    open STDOUT, '>>', "$dir/node-b.stderr";
    open STDERR, '>&', \*STDOUT;
    { exec build_path('offload-sidecar'), '-c', $conf_b }
    POSIX::_exit(127);
}
ok(wait_until(sub { redis_cmd('EXISTS', "offload:{ctl}:node:other$$") }, 10,
    'node b registered'), 'a second node is up');
my $two = "$dir/two.runs";
my @res = concurrent_posts(8, 5, sub { json_encode({ ok_at => 3,
    log => $two }) }, path => '/jobs/two');
is(scalar(grep { $_->{status} == 200 } @res), 40, 'two: 40 jobs, all 200')
    or diag(explain [ map { $_->{status} } @res ]);
my $by_id = runs($two);
is(scalar keys %$by_id, 40, 'two: 40 jobs ran');
my @twice = grep { join(',', map { $_->[0] } @{ $by_id->{$_} }) ne '1,2,3' }
    keys %$by_id;
is(scalar @twice, 0, 'two: every job ran exactly attempts 1, 2, 3')
    or diag(explain { map { ($_ => $by_id->{$_}) } @twice[0 .. 2] });
is(retry_set('two'), 0, 'two: the retry set is empty');
my $moved = () = slurp("$dir/node-b.log") =~ /job \S+ failed for now/g;
diag("two: node b's workers retried $moved of the 80 failures");
kill 'TERM', $b;
waitpid $b, 0;
is($? >> 8, 0, 'node b exited 0');
ok(slurp("$dir/node-b.stderr") !~ /Sanitizer|runtime error/,
    'node b: no sanitizer report');

finish();
