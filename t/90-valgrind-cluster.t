#!/usr/bin/perl
# The sidecar (supervisor and workers) and nginx with the module under
# valgrind on a Redis Cluster (three masters with a replica each; t/90 is
# the plain Redis): sync jobs on two queues on two masters, async jobs and
# their GETs, an Idempotency-Key, a big body (its body key on the bulk
# link), the status; a queue's slot moved under a few jobs (nginx and the
# sidecar follow it), a MOVED and an ASK followed by nginx; a master
# killed, its replica promoted, jobs answered on it again (nginx lets the
# dead master's peer go, the sidecar asks the seeds again); nginx
# reloaded; a stop.  Every job answered with its own result; no memory
# errors anywhere; no definite leaks in the sidecar (nginx leaves its
# pools to the exit, so leaks are not counted there).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use Valgrind;
use ClusterTopology;

skip_unless_valgrind();

my $dir = tmpdir();
my $cl = start_cluster_topology(masters => 3, replicas => 1);
my $ctl = $cl->owner_port('ctl');
my ($doomed, $third) = grep { $_ != $ctl } $cl->master_ports;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($doomed);
ok($qa && $qb, "queue $qa on the control shard ($ctl), $qb on $doomed");
redis_use($ctl);

my @valgrind = ('valgrind', '--error-exitcode=99');
my $supervisor = start_sidecar(redis => $cl->url, timeout => scaled(60),
    wrapper => [ @valgrind, '--leak-check=full',
        '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
        '--trace-children=yes', "--log-file=$dir/valgrind.%p.log" ],
    conf => "queue $qa { handler echo; workers 1; }\n"
        . "queue $qb { handler echo; workers 1; }\n");
start_nginx(workers => 1, level => 'info', timeout => scaled(60),
    wrapper => [ @valgrind, "--log-file=$dir/nginx-valgrind.%p.log" ],
    http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    client_max_body_size 4m;
    offload_redis ${\ $cl->url};
    offload_timeout 60s;
    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location /jobs/ { offload_jobs; }
    location = /status { offload_status; }
}
HTTP
ok(wait_until(sub {
    !grep { http('POST', "/sync/$_", '{}')->{status} != 200 } $qa, $qb
}, scaled(60), 'nginx answers on both queues'), 'stack ready');

# Posts one sync job to queue $q tagged $tag: whether it came back 200
# with its own result.
sub sync_ok {
    my ($q, $tag) = @_;
    my $r = http('POST', "/sync/$q", qq({"q":"$q","t":"$tag"}));
    return 1 if $r->{status} == 200 && ($r->{json}{q} // '') eq $q
        && ($r->{json}{t} // '') eq $tag;
    diag("$q job $tag: $r->{status} " . ($r->{content} // ''));
    return 0;
}

# ---- sync jobs on both queues, an async job, a big body, the status
is(scalar(grep { sync_ok($_ % 2 ? $qa : $qb, "s$_") } 1 .. 4), 4,
    "4 sync jobs on $qa and $qb, each its own result");

# Posts an async job to queue $q and GETs it until it is done: its id
# when it came back with its own result.
sub async_done {
    my ($q) = @_;
    my $r = post_json("/async/$q", { async => $q });
    is($r->{status}, 202, "an async job on $q: 202");
    my $id = $r->{json}{id} // '';
    my $doc;
    ok(wait_until(sub {
        $doc = http('GET', "/jobs/$id")->{json};
        $doc && ($doc->{status} // '') eq 'done';
    }, scaled(30), "job $id done"), "GET /jobs/<id> of $q\'s job: done");
    is_deeply($doc->{result}, { async => $q }, 'with its result');
    return $id;
}
async_done($qb);
my $id_a = async_done($qa);
my @same = map { http('POST', "/async/$qb", '{"once":1}',
    { 'Idempotency-Key' => "k-$$" })->{json}{id} // '' } 1 .. 2;
ok($same[0] && $same[1] eq $same[0],
    "an Idempotency-Key sent twice on $qb: one job ($same[0])");

my $r;
my $big = '{"big":"' . ('v' x (3 * 2**19)) . '"}';
$r = http('POST', "/sync/$qb", $big);
ok($r->{status} == 200 && ($r->{content} // '') eq $big,
    "a 1.5 MB job on $qb: 200, the same back") or diag($r->{status});

my $node = node_name();
ok(wait_until(sub {
    my $s = http('GET', '/status')->{json};
    $s && grep { ($_->{node} // '') eq $node } @{ $s->{nodes} || [] };
}, scaled(30), 'node in the status'), 'offload_status lists the node');

# ---- qa's slot moved to another master under a few jobs
my $slot_a = $cl->slot_of($qa);
my @posts = map { [ $_, send_post("/sync/$qa",
    qq({"q":"$qa","t":"m$_"})) ] } 1 .. 3;
is($cl->move_slot($slot_a, $third), $ctl,
    "slot $slot_a ($qa) moved from $ctl to $third");
push @posts, map { [ $_, send_post("/sync/$qa",
    qq({"q":"$qa","t":"m$_"})) ] } 4 .. 6;
my $moved_ok = 0;
for my $p (@posts) {
    my $a = read_answer($p->[1], scaled(60));
    if ($a->{status} == 200 && ($a->{json}{t} // '') eq "m$p->[0]") {
        $moved_ok++;
    } else {
        diag("job m$p->[0]: $a->{status} " . ($a->{content} // ''));
    }
}
is($moved_ok, 6, '6 jobs around the move answered 200, each its own result');
is(scalar(grep { sync_ok($qa, "a$_") } 1 .. 2), 2,
    "2 jobs on $qa after the move, answered from $third");
is($cl->cmd($third, 'EXISTS', "offload:{$qa}:jobs"), 1,
    "$qa\'s stream is on $third");
my $left = qr/the slot of queue "\Q$qa\E" left, asking for the map/;
ok(wait_until(sub {
    slurp(nginx_error_log()) =~ /MOVED \d+ \S+, sent to |$left/
}, scaled(10), 'nginx followed the move'), 'nginx followed the move (a '
    . 'MOVED, or its sharded channel ended)');
$r = http('GET', "/jobs/$id_a");
ok($r->{status} == 200 && ($r->{json}{status} // '') eq 'done'
    && ($r->{json}{result}{async} // '') eq $qa,
    "$qa\'s async job read again: its record moved with its slot")
    or diag("$r->{status} " . ($r->{content} // ''));
ok(wait_until(sub {
    slurp("$dir/sidecar.log")
        =~ /slot $slot_a (?:moved to|is served by) 127\.0\.0\.1:$third\b/
}, scaled(10), 'sidecar on the new master'),
    "the sidecar's worker followed $qa to $third");

# a queue nobody serves, whose slot moved after nginx last asked for the
# map (nothing tells nginx: it subscribed no channel of that queue): its
# XADD answered MOVED, followed to the new master, where no stream is: 404
my ($qn) = grep { $cl->owner_port($_) == $third } map { "nobody$_" } 0 .. 99;
my $slot_n = $cl->slot_of($qn);
is($cl->move_slot($slot_n, $ctl), $third, "slot $slot_n ($qn) moved to $ctl");
$r = http('POST', "/sync/$qn", '{}');
is($r->{status}, 404, "a job to $qn, nobody's queue: 404")
    or diag("$r->{status} " . ($r->{content} // ''));
like(slurp(nginx_error_log()), qr/MOVED $slot_n 127\.0\.0\.1:$ctl, sent to /,
    'after nginx followed its MOVED');

# ---- qa's slot half moved back: its keys on $ctl, the slot still
# $third's (MIGRATING there): a job's XADD answered ASK, sent with ASKING
# to $ctl, answered once the move ends
$cl->begin_move_slot($slot_a, $ctl);
my $s = send_post("/sync/$qa", qq({"q":"$qa","t":"ask"}));
ok(wait_until(sub {
    slurp(nginx_error_log()) =~ /: ASK $slot_a \S+:$ctl, sent to \S+:$ctl\b/
}, scaled(10), 'the ASK followed'), "a job's XADD followed ASK to $ctl");
$cl->end_move_slot($slot_a, $ctl);
my $a = read_answer($s, scaled(60));
ok($a->{status} == 200 && ($a->{json}{t} // '') eq 'ask',
    'and was answered 200 with its own result once the move ended')
    or diag("$a->{status} " . ($a->{content} // ''));
ok(sync_ok($qa, 'back'), "a job on $qa back on $ctl");

# ---- qb's master killed, its replica promoted, jobs answered on it
my $slot_b = $cl->slot_of($qb);
$cl->kill_node($doomed);
my $new = $cl->wait_owner_change($slot_b, $doomed, scaled(30));
ok($new, "master $doomed killed, its replica took over: " . ($new // '-'));
ok(wait_until(sub {
    http('POST', "/sync/$qb", '{}', { 'X-Offload-Timeout' => 5 })->{status}
        == 200
}, scaled(60), "$qb served again"), "$qb served again on the new master");
is(scalar(grep { sync_ok($qb, "f$_") } 1 .. 3), 3,
    "3 jobs on $qb after the failover, each its own result");
ok(wait_until(sub {
    slurp(nginx_error_log())
        =~ /master \S+:$doomed left the map/
}, scaled(60), 'dead master retired'), "nginx let the dead master $doomed go");
like(slurp("$dir/sidecar.log"),
    qr/slot $slot_b (?:moved to|is served by) 127\.0\.0\.1:$new\b/,
    "the sidecar asked the seeds again and found $new")
    if $new;

# ---- nginx reloaded: the new worker learns the map anew (the dead
# master among its seeds), the old one leaves
my @old = nginx_worker_pids();
kill 'HUP', nginx_pid();
ok(wait_until(sub {
    my @now = nginx_worker_pids();
    @now == 1 && $now[0] != $old[0];
}, scaled(30), 'old worker replaced'), 'nginx reloaded');
ok(wait_until(sub {
    !grep { http('POST', "/sync/$_", '{}')->{status} != 200 } $qa, $qb
}, scaled(30), 'jobs after the reload'), 'the new worker answers on both '
    . 'queues');
is(scalar(grep { sync_ok($_ % 2 ? $qa : $qb, "r$_") } 1 .. 2), 2,
    'each job its own result');

# ---- a clean stop of both
is(stop_nginx(), 0, 'nginx under valgrind exited 0 (not 99)');
my $status = stop_sidecar(scaled(60));
is($status, 0, 'sidecar under valgrind exited 0 (not 99)')
    or diag("wait status $status");

# every log complete (a summary: the process ran to its end under
# valgrind), with no error and, where $leaks, no definite leak
sub check_logs {
    my ($what, $leaks, @logs) = @_;
    for my $log (@logs) {
        my $text = slurp($log);
        (my $name = $log) =~ s{.*/}{};
        if ($what eq 'sidecar') {
            my ($parent) = $text =~ /^==\d+== Parent PID: (\d+)/m;
            $name .= ($parent // 0) == $supervisor ? ' (worker)'
                : ' (supervisor)';
        }
        like($text, qr/ERROR SUMMARY: \d+/, "$name: complete");
        ok($text !~ /ERROR SUMMARY: [1-9]/, "$name: no errors")
            or diag(first_records($text));
        ok($text !~ /definitely lost: [1-9]/, "$name: no definite leaks")
            if $leaks;
    }
}

my @logs = glob("$dir/valgrind.*.log");
ok(@logs >= 3, scalar(@logs) . ' sidecar valgrind logs (supervisor + '
    . '2 workers)');
check_logs('sidecar', 1, @logs);
my @nginx_logs = glob("$dir/nginx-valgrind.*.log");
ok(@nginx_logs >= 3, scalar(@nginx_logs)
    . ' nginx valgrind logs (master + worker + the reload\'s worker)');
check_logs('nginx', 0, @nginx_logs);

finish();
