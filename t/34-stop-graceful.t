#!/usr/bin/perl
# A rolling restart: a node stopped gracefully (SIGTERM) lets its workers
# finish the jobs they run (shutdown_timeout), and the other node does not
# take those jobs for a lost node's meanwhile.  The stopping node goes on
# touching its workers' entries; it claims nothing itself.  (Before: its
# claim rounds stopped with the SIGTERM, so a job running longer than
# claim_idle looked idle, and the other node claimed it and ran it again
# beside the first run.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $runs = "$dir/runs.log";
my $queue = "claim_idle 400ms;\nshutdown_timeout 10s;\n"
    . "queue runs { handler exec; workers 1; max_attempts 3; "
    . "command \"/usr/bin/python3 $FindBin::Bin/exec/log_runs.py $runs\"; }\n";

start_redis();
start_sidecar(conf => $queue);
ok(start_jobs_nginx(ready => [ '/jobs/runs', '{"tag":"warm"}' ],
    server => 'offload_timeout 30s;'), 'stack ready');

# a job running on the first node, then a second node
my $sock = send_post('/jobs/runs', '{"tag":"x","ms":3000}');
ok(wait_until(sub { slurp($runs) =~ /start x / }, scaled(10), 'x runs'),
    'a job runs on the first node');
my $conf2 = "$dir/second.conf";
spew($conf2, "redis 127.0.0.1:" . redis_port() . ";\nnode_name second;\n"
    . "log $dir/second.log info;\nheartbeat 200ms;\n" . $queue);
spawn('second', "$dir/second.stderr", {}, build_path('offload-sidecar'),
    '-c', $conf2);
ok(wait_until(sub {
    my $v = redis_cmd('GET', 'offload:{ctl}:node:second');
    defined $v && !ref $v && $v =~ /"pid":\d+/ && $v =~ /"runs"/;
}, scaled(15), 'the second node registered'), 'a second node serves it too');

# the first node asked to stop while the job runs for 2 s more, 5 times
# claim_idle
kill 'TERM', sidecar_pid();
my $r = read_answer($sock, scaled(20));
is($r->{status}, 200, 'the job is answered') or diag($r->{content});
ok(wait_until(sub { !alive('sidecar') }, scaled(15), 'the first exits'),
    'the first node exits once its job ended');
my (%starts, $log);
$log = slurp($runs);
$starts{$1}++ while $log =~ /^start (\w+) /mg;
is($starts{x}, 1, 'the job ran once');
unlike(slurp("$dir/second.log"), qr/of a lost node/,
    'the second node claimed nothing of the stopping one');

# and the second node goes on serving the queue alone
$r = post_json('/jobs/runs', '{"tag":"y"}', scaled(20));
is($r->{status}, 200, 'the second node serves on') or diag($r->{content});
stop_proc('second', scaled(10));

finish();
