#!/usr/bin/perl
# Sharding by queue: one sidecar serves queue a on one Redis and queue b on
# another (b's block names its own redis); nginx passes each location to
# its queue's Redis.  Jobs go through both, each Redis holds only its own
# queue's keys and a node document listing its own queue, a worker of b
# killed mid-job is restarted and its job run again from b's Redis, and
# offloadctl reading both Redis servers (-r twice, or the config) shows
# both queues, lists dead letters of both, and retries, purges and
# replays a queue's on the Redis that holds it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $port_a = start_redis();
my $port_b = free_port();
spawn('redis_b', "$dir/redis_b.log", {}, 'redis-server', '--port', $port_b,
    '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', $dir,
    '--daemonize', 'no');
ok(wait_until(sub { (redis_cmd_at($port_b, 'PING') // '') eq 'PONG' }, 10,
    'second redis-server'), "second Redis on port $port_b");

start_sidecar(want => { a => 2 }, conf => <<"CONF");
claim_idle 1s;
queue a { handler echo; workers 2; }
queue b { handler sleep; workers 1; redis 127.0.0.1:$port_b; }
CONF
my $node = node_name();

start_nginx(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    location = /jobs/a { offload_redis 127.0.0.1:$port_a; offload_pass a; }
    location = /jobs/b { offload_redis 127.0.0.1:$port_b; offload_pass b; }
}
HTTP

# ---- the node document on each Redis lists the queues that live there
sub doc_at {
    my $v = redis_cmd_at($_[0], 'GET', "offload:{ctl}:node:$node");
    return defined $v && !ref $v ? json_decode($v) : undef;
}
my $doc_b;
ok(wait_until(sub {
    $doc_b = doc_at($port_b);
    $doc_b && ($doc_b->{queues}{b}{workers}[0]{pid} // 0) > 0;
}, scaled(10), 'node document on the second Redis'),
    'the node registers on the second Redis too');
is_deeply([ sort keys %{ node_doc()->{queues} } ], ['a'],
    'the first Redis\'s document lists queue a only');
is_deeply([ sort keys %{ $doc_b->{queues} || {} } ], ['b'],
    'the second\'s lists queue b only');
ok(redis_cmd_at($port_b, 'SISMEMBER', 'offload:{ctl}:nodes', $node),
    'the node is a member of offload:{ctl}:nodes on the second Redis');

# ---- jobs through both
ok(wait_until(sub {
    http('POST', '/jobs/a', '{"x":1}')->{status} == 200
        && http('POST', '/jobs/b', '{"ms":1}')->{status} == 200;
}, scaled(15), 'both locations answer'), 'nginx reaches both queues');
my $ok = 0;
for my $i (1 .. 20) {
    my $r = http('POST', $i % 2 ? '/jobs/a' : '/jobs/b',
        $i % 2 ? qq({"i":$i}) : '{"ms":1}');
    $ok++ if $r->{status} == 200
        && ($i % 2 ? ($r->{json}{i} // 0) == $i : defined $r->{json}{ms});
}
is($ok, 20, '20 jobs answered, 10 per queue, each by its own handler');
unlike(redis_cmd('INFO', 'commandstats'), qr/^cmdstat_wait:/m,
    'no WAIT without wait_replicas');

# ---- each Redis holds only its own queue's keys
my $keys_a = redis_cmd('KEYS', 'offload:{*}:*');
my $keys_b = redis_cmd_at($port_b, 'KEYS', 'offload:{*}:*');
ok((grep { /^offload:\{a\}:jobs$/ } @$keys_a), 'stream of a on the first');
ok(!(grep { /^offload:\{b\}:/ } @$keys_a), 'nothing of b on the first')
    or diag("@$keys_a");
ok((grep { /^offload:\{b\}:jobs$/ } @$keys_b), 'stream of b on the second');
ok(!(grep { /^offload:\{a\}:/ } @$keys_b), 'nothing of a on the second')
    or diag("@$keys_b");
is(redis_cmd_at($port_b, 'XINFO', 'GROUPS', 'offload:{b}:jobs')->[0][1],
    'workers', 'b\'s workers read b\'s stream on the second Redis');

# ---- a worker of b killed mid-job: restarted, and the job runs again
my $old = $doc_b->{queues}{b}{workers}[0]{pid};
my $sock = send_post('/jobs/b', '{"ms":1500}');
ok(wait_until(sub {
    my $w = doc_at($port_b)->{queues}{b}{workers}[0];
    ($w->{state} // '') eq 'busy' && $w->{pid} == $old;
}, scaled(10), 'b\'s worker busy'), 'b\'s worker runs the job');
ok(kill('KILL', $old), "killed b's worker (pid $old)");
my $new;
ok(wait_until(sub {
    $new = doc_at($port_b)->{queues}{b}{workers}[0]{pid};
    $new && $new != $old;
}, scaled(10), 'a new worker for b'), 'b\'s slot has a new worker');
my $answer = read_answer($sock, scaled(20));
is($answer->{status}, 200, 'the killed job ran again and answered 200');
ok(($answer->{json}{ms} // 0) >= 1500, 'with its own result: slept 1.5 s')
    or diag(explain($answer));
my $crash = redis_cmd_at($port_b, 'XREVRANGE', 'offload:{ctl}:events', '+', '-',
    'COUNT', '20');
ok((grep { my %f = @{ $_->[1] }; ($f{type} // '') eq 'crash'
           && ($f{queue} // '') eq 'b' } @$crash),
    'the crash event is on b\'s Redis');

# ---- reload: a queue may not move to a Redis the node does not use yet
my $conf = sidecar_conf_file();
my $text = slurp($conf);
my $other = free_port();
(my $moved = $text) =~ s/redis 127\.0\.0\.1:$port_b;/redis 127.0.0.1:$other;/
    or die 'no queue b redis line';
spew($conf, $moved);
kill 'HUP', sidecar_pid();
ok(wait_until(sub {
    slurp("$dir/sidecar.log") =~ /reload refused.*a queue's redis/
}, scaled(10), 'reload refused'), 'a reload moving b to a new Redis is '
    . 'refused') or diag(slurp("$dir/sidecar.log"));
ok(wait_until(sub {
    grep { $_->{report}{error} =~ /a queue's redis/ }
        @{ events('reload_failed') };
}, scaled(10), 'reload_failed event'), 'reload_failed event on the first '
    . 'queue\'s Redis');
is(http('POST', '/jobs/b', '{"ms":1}')->{status}, 200, 'b still served');

spew($conf, $text . "queue c { handler echo; redis 127.0.0.1:$port_b; }\n");
kill 'HUP', sidecar_pid();
ok(wait_until(sub {
    my $d = doc_at($port_b);
    $d && ($d->{queues}{c}{workers}[0]{pid} // 0) > 0;
}, scaled(15), 'queue c on the second Redis'), 'a reload adding a queue on '
    . 'a Redis the node already uses: its document there lists it');
is_deeply([ sort keys %{ node_doc()->{queues} } ], ['a'],
    'and the first\'s still lists a only');

# ---- offloadctl reads both
my $ctl = build_path('offloadctl');
my $out = `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b queues 2>&1`;
is($? >> 8, 0, 'offloadctl -r a -r b queues: exit 0') or diag($out);
like($out, qr/^a\s/m, 'lists queue a');
like($out, qr/^b\s/m, 'lists queue b');

$out = `$ctl -c ${\ sidecar_conf_file()} status --json 2>&1`;
is($? >> 8, 0, 'offloadctl -c status: exit 0') or diag($out);
my $st = json_decode($out);
my @mine = grep { $_->{node} eq $node }
    @{ ref $st eq 'HASH' && $st->{nodes} || [] };
is(scalar @mine, 1, 'the config\'s two Redis servers: one node document');
is_deeply([ sort keys %{ $mine[0]{queues} || {} } ], [ 'a', 'b', 'c' ],
    'listing the queues of both');

$out = `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b top -b -n 1 2>&1`;
is($? >> 8, 0, 'offloadctl top -b over both: exit 0') or diag($out);
like($out, qr/workers 4\b/, 'top counts the workers of both');

$out = `$ctl -c ${\ sidecar_conf_file()} events -n 100 2>&1`;
is($? >> 8, 0, 'offloadctl -c events: exit 0') or diag($out);
like($out, qr/^\S+ crash +\Q$node\E b\b/m, 'with the crash on b\'s Redis');
like($out, qr/^\S+ reload_failed +\Q$node\E/m,
    'and the refused reload on a\'s');

$out = `$ctl -r 127.0.0.1:$port_a queues 2>&1`;
unlike($out, qr/^b\s/m, 'one -r: the first Redis alone has no queue b');

# submit and result with both -r and no config: the queue's own Redis
$out = `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b submit --wait b '{"ms":10}' 2>&1`;
is($? >> 8, 0, 'offloadctl -r a -r b submit --wait b: exit 0') or diag($out);
like($out, qr/"ms":\s*\d+/, 'the job ran on b\'s Redis and was answered');
my $sub_id = `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b submit b '{"ms":10}' 2>&1`;
chomp $sub_id;
like($sub_id, qr/^[0-9a-f]{32}$/, 'submit without --wait prints the job id');
ok(wait_until(sub {
    `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b result b $sub_id 2>&1`;
    $? >> 8 == 0;
}, scaled(10), 'result on b'), 'offloadctl result finds it on b\'s Redis');
$out = `$ctl -r 127.0.0.1:$port_a -r 127.0.0.1:$port_b submit nowhere '{}' 2>&1`;
is($? >> 8, 1, 'a queue on neither Redis: exit 1') or diag($out);
like($out, qr/queue nowhere is on none of the 2 Redis servers/,
    'saying so');

# ---- a node lost while it runs a job of b: another node claims it on
# b's Redis (drained meanwhile, so that the second node takes the job)
my $node2 = "$node-2";
spew("$dir/sidecar2.conf", <<"CONF");
redis 127.0.0.1:$port_a;
node_name $node2;
log $dir/sidecar2.log info;
heartbeat 200ms;
claim_idle 1s;
queue b { handler sleep; workers 1; redis 127.0.0.1:$port_b; }
CONF
spawn('sidecar2', "$dir/sidecar2.stderr", {}, build_path('offload-sidecar'),
    '-c', "$dir/sidecar2.conf");
my $doc2;
ok(wait_until(sub {
    my $v = redis_cmd_at($port_b, 'GET', "offload:{ctl}:node:$node2");
    $doc2 = defined $v && !ref $v ? json_decode($v) : undef;
    $doc2 && ($doc2->{queues}{b}{workers}[0]{pid} // 0) > 0;
}, scaled(15), 'second node on b'), 'a second node serves b');
my $conf_opt = "-c " . sidecar_conf_file();
$out = `$ctl $conf_opt drain -t 10 $node 2>&1`;
is($? >> 8, 0, 'offloadctl drain over both Redis servers') or diag($out);
$sock = send_post('/jobs/b', '{"ms":2000}');
my $lost_worker;
ok(wait_until(sub {
    my $v = redis_cmd_at($port_b, 'GET', "offload:{ctl}:node:$node2");
    my $w = json_decode($v // '')->{queues}{b}{workers}[0];
    $lost_worker = $w->{pid};
    ($w->{state} // '') eq 'busy';
}, scaled(10), 'second node runs the job'), 'the second node runs the job');
ok(kill('KILL', proc_pid('sidecar2'), $lost_worker),
    'SIGKILLed the second node and its worker');
$out = `$ctl $conf_opt resume -t 10 $node 2>&1`;
is($? >> 8, 0, 'offloadctl resume') or diag($out);
$answer = read_answer($sock, scaled(30));
is($answer->{status}, 200, 'the lost node\'s job answered 200');
ok(($answer->{json}{ms} // 0) >= 2000, 'having run again in full');
like(slurp("$dir/sidecar.log"), qr/queue b: claimed entry \S+ of a lost node/,
    'the first node claimed it from b\'s Redis');

# ---- dead letters on both Redis servers: `dead` over both -r lists each
# with its Redis and trace id; retry, purge and replay find the queue's
my $tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my $now = int(time * 1000);
sub dead_letter {
    my ($port, $id, $payload) = @_;
    redis_cmd_at($port, 'XADD', 'offload:{c}:dead', '*', v => 1, id => $id,
        payload => $payload, reply => 'offload:reply:none',
        deadline => $now + 60000, submitted => $now, attempt => 2,
        rid => '', reason => 'signal', dead_at => $now, tp => $tp);
}
my ($id_a, $id_b, $id_r) = ('a' x 32, 'b' x 32, 'd' x 32);
dead_letter($port_b, $id_b, '{"on":"b"}');
dead_letter($port_b, $id_r, '{"replay":1}');
# left on the first Redis, say from before c moved to the second
dead_letter($port_a, $id_a, '{"on":"a"}');
my $two = "-r 127.0.0.1:$port_a -r 127.0.0.1:$port_b";

$out = `$ctl $two dead c 2>&1`;
is($? >> 8, 0, 'dead over two -r: exit 0') or diag($out);
like($out, qr/^127\.0\.0\.1:$port_a\s+\S+Z\s+$id_a\s+2\s+signal\s+
    4bf92f3577b34da6a3ce929d0e0e4736\s+\{"on":"a"\}$/mx,
    'lists the letter on the first, tagged with its Redis, with its trace')
    or diag($out);
like($out, qr/^127\.0\.0\.1:$port_b\s+\S+Z\s+$id_b\s.*\{"on":"b"\}$/m,
    'and those on the second') or diag($out);
my @json = map { json_decode($_) } split /\n/, `$ctl $two --json dead c`;
is_deeply([ sort map { "$_->{redis} $_->{id}" } @json ],
    [ sort "127.0.0.1:$port_a $id_a", "127.0.0.1:$port_b $id_b",
      "127.0.0.1:$port_b $id_r" ], 'dead --json: each with its "redis"');

$out = `$ctl $conf_opt dead c 2>&1`;
is($? >> 8, 0, 'dead with -c: exit 0') or diag($out);
ok($out =~ /^\S+Z\s+$id_b\s/m && $out !~ /$id_a|127\.0\.0\.1/,
    'with -c: the letters on c\'s own Redis, untagged') or diag($out);

$out = `$ctl $conf_opt replay $id_r 2>&1`;
is($? >> 8, 0, 'replay with -c of a letter on the queue\'s Redis: exit 0')
    or diag($out);
like($out, qr/^\{"replay":1\}$/m, 'runs it from the second Redis');

redis_cmd_at($port_a, 'XADD', 'offload:{c}:jobs', '*', x => 1);
$out = `$ctl $two retry c --all 2>&1`;
is($? >> 8, 2, 'retry of a queue on both Redis servers: exit 2');
like($out, qr/queue c is on several Redis servers .*-r/,
    'asks for the one with -r') or diag($out);
redis_cmd_at($port_a, 'DEL', 'offload:{c}:jobs');
$out = `$ctl $two purge nosuch --all 2>&1`;
is($? >> 8, 1, 'purge of a queue on neither: exit 1');
like($out, qr/queue nosuch is on none of the 2 Redis servers/, 'says so');

$out = `$ctl $two retry c $id_b 2>&1`;
is($? >> 8, 0, 'retry over two -r of a queue on the second: exit 0')
    or diag($out);
like($out, qr/retried 1 dead letter/, 'retry says so');
ok(wait_until(sub {
    my $v = redis_cmd_at($port_b, 'GET', "offload:{c}:result:$id_b");
    defined $v && $v =~ /^OR1 \Q$id_b\E 200 .*\n\{"on":"b"\}$/s;
}, scaled(10), 'retried result on b'),
    'the retried job ran on the second Redis and stored its result there');
is(redis_cmd_at($port_b, 'XLEN', 'offload:{c}:dead'), 1,
    'the second keeps the other letter');
is(redis_cmd_at($port_a, 'XLEN', 'offload:{c}:dead'), 1,
    'the first\'s leftover letter is untouched');
$out = `$ctl $two purge c --all 2>&1`;
like($out, qr/purged 1 dead letter of queue c/,
    'purge --all over two -r purges on the queue\'s Redis') or diag($out);
is(redis_cmd_at($port_b, 'XLEN', 'offload:{c}:dead'), 0,
    'the second has none left');
$out = `$ctl -r 127.0.0.1:$port_a purge c --all 2>&1`;
like($out, qr/purged 1 dead letter of queue c/,
    'one -r: purges the leftover there') or diag($out);

# ---- a clean stop removes the node from both
stop_sidecar();
ok(!defined doc_at($port_b) && !node_doc(),
    'a clean stop removes the node document from both Redis servers');
ok(!redis_cmd_at($port_b, 'SISMEMBER', 'offload:{ctl}:nodes', $node),
    'and its name from offload:{ctl}:nodes on the second');

finish();
