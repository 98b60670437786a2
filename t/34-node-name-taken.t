#!/usr/bin/perl
# A second sidecar started under the node_name of a live one (a unit
# started twice, a deploy's overlap, two hosts with one host name) must
# not run that node's jobs: its workers bear the same names and would read
# the other's pending entries, running them twice at once.  It holds its
# workers back (they start, but read nothing) while the other holds the
# name's lease, says so once, and writes no node document; once the other
# stops, it takes the name over and serves.  (Before: it ran both jobs
# in flight again, 30 ms after it started, with only "starting" logged.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OffloadTest;

my $dir = tmpdir();
my $runs = "$dir/runs.log";
my $queue = "queue runs { handler exec; workers 2; max_attempts 1; "
    . "command \"/usr/bin/python3 $FindBin::Bin/exec/log_runs.py $runs\"; }\n";

start_redis();
start_sidecar(conf => $queue);
ok(start_jobs_nginx(ready => [ '/jobs/runs', '{"tag":"warm"}' ],
    server => 'offload_timeout 30s;'), 'stack ready');

# two jobs in flight on the first node
my @socks = map { send_post('/jobs/runs', qq({"tag":"$_","ms":3000})) }
    qw(x y);
ok(wait_until(sub { my $t = slurp($runs); $t =~ /start x / && $t =~ /start y / },
    scaled(10), 'both jobs run'), 'two jobs run on the first node');

# the same configuration, node_name included, started again
my $conf2 = "$dir/second.conf";
spew($conf2, "redis 127.0.0.1:" . redis_port() . ";\nnode_name "
    . node_name() . ";\nlog $dir/second.log info;\nheartbeat 200ms;\n"
    . $queue);
spawn('second', "$dir/second.stderr", {}, build_path('offload-sidecar'),
    '-c', $conf2);
ok(wait_until(sub { slurp("$dir/second.log")
        =~ /node_name is held by another sidecar \(instance, pid, host: \S+ ${\ sidecar_pid()} / },
    scaled(10), 'the second says so'),
    'the second sidecar says the name is held, and by whom')
    or diag(slurp("$dir/second.log"));

# a standby sidecar stopped meanwhile (who would not, seeing that line?)
# hands back nothing: the entries its consumers' names hold are the first
# node's workers', running
spawn('third', "$dir/third.stderr", {}, build_path('offload-sidecar'),
    '-c', $conf2);
ok(wait_until(sub { (() = slurp("$dir/second.log")
        =~ /node_name is held by another sidecar/g) >= 2 },
    scaled(10), 'the third says so too'), 'a third one waits too');
is(stop_proc('third', scaled(10)), 0, 'the third, stopped: exit 0');

for my $sock (@socks) {
    my $r = read_answer($sock, scaled(20));
    is($r->{status}, 200, 'a job in flight is answered') or diag($r->{content});
}
my %starts;
my $log = slurp($runs);
$starts{$1}++ while $log =~ /^start (\w+) /mg;
is($starts{x}, 1, 'job x ran once');
is($starts{y}, 1, 'job y ran once');
is(node_doc()->{pid}, sidecar_pid(), 'the node document is the first\'s');

# the first stops: the second takes the name over at its next heartbeat
# (the first gave the lease up: not at its expiry, 5 s on)
stop_sidecar();
my $t0 = time;
ok(wait_until(sub { slurp("$dir/second.log") =~ /node_name lease taken: workers read jobs/ },
    scaled(10), 'the second takes over'), 'once the first stops, the second '
    . 'takes the name') or diag(slurp("$dir/second.log"));
cmp_ok(time - $t0, '<', scaled(2), 'at once: the first gave its lease up');
# until nginx's registry read sees the second's document, a job may get
# 503 no_workers (docs/HTTP_API.md)
my $r;
ok(wait_until(sub {
    ($r = post_json('/jobs/runs', '{"tag":"z"}', scaled(20)))->{status} == 200;
}, scaled(5), 'served'), 'and serves the queue') or diag($r->{content});
ok(wait_until(sub { (node_doc() // {})->{pid} == proc_pid('second') },
    scaled(5), 'its document'), 'with its own node document');
stop_proc('second', scaled(10));

finish();
