#!/usr/bin/perl
# offload_status_cache: however many clients poll offload_status,
# offload_metrics and the dashboard across two nginx workers, Redis runs the
# nodes script at most once per interval; the answers stay right (sort,
# limit, both reports) and fresh (a node that appears is listed within two
# intervals); a refresh whose Redis stops answering (SIGSTOP) holds no
# reader past its deadline; an answer larger than the zone is not kept,
# the error log says so, and it is still read once per interval; reloads
# that name other Redis servers (here other databases of the one) each
# time are answered from the zone's 32 entries: those of the Redis no
# longer named are freed or taken over, and an entry is the answer of its
# own Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use OffloadTest;

start_redis(args => [ '--databases', '91' ]);
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 3; }
queue other { handler echo; workers 1; }
CONF

# only reports: no offload_pass, so no admission script counts as a read
start_server_nginx(workers => 2, http => 'offload_status_cache 4m 1s;',
                   server => <<'SERVER');
    location = /status { offload_status; }
    location = /metrics { offload_metrics; }
    location = /dash { offload_dashboard; }
SERVER

sub status { http('GET', '/status' . ($_[0] // ''))->{json} || {} }

sub reads {
    my $info = redis_cmd('INFO', 'commandstats') // '';
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_(?:evalsha_ro|eval_ro):calls=(\d+)/mg;
    return $n;
}

ok(wait_until(sub { (status()->{redis} // '') eq 'ok' }, scaled(10),
    'status ok'), 'status reads the nodes');

# ---- answers: sort and limit applied by nginx over the cached answer
my $s = status();
is($s->{workers_total}, 4, 'four workers');
is(scalar @{ $s->{workers} }, 4, 'all four listed');
is($s->{queues}{echo}{workers}, 3, 'queue echo: three workers');
is($s->{redises}[0]{state}, 'ok', 'the Redis is listed as read');
$s = status('?sort=memory&limit=2');
is(scalar @{ $s->{workers} }, 2, 'limit=2: two workers');
is($s->{workers_total}, 4, 'of four');
my @rss = map { $_->{rss} } @{ status('?sort=memory')->{workers} };
is_deeply(\@rss, [ sort { $b <=> $a } @rss ], 'sort=memory: descending');
my @default = map { "$_->{queue}/$_->{slot}" } @{ status()->{workers} };
is_deeply(\@default, [ 'echo/0', 'echo/1', 'echo/2', 'other/0' ],
    'no sort: by node, queue, slot');
like(http('GET', '/metrics')->{content},
    qr/^offload_worker_rss_bytes\{node="[^"]+",queue="other",slot="0"\} \d+$/m,
    'metrics from the same cached answer');

# the common answers are rendered once per refresh, the others assembled
# per request from the same parts: /status reads as /status?limit=N (no
# sort, every worker), but for this nginx's live figures
sub redis_part {
    my $s = status($_[0]);
    delete @$s{qw(nginx redises)};
    return json_encode($s);
}
my ($rendered, $assembled);
ok(wait_until(sub {
    $rendered = redis_part();
    $assembled = redis_part('?limit=100000');
    $rendered eq $assembled && $rendered =~ /"workers":\[\{/;
}, scaled(5), 'rendered as assembled'),
    'the rendered default answer is the assembled one')
    or diag("rendered: $rendered\nassembled: $assembled");

# ---- at most one read per interval, whatever the load
my $secs = 4;
my $before = reads();
my $t0 = time;
my @kids;
for my $k (1 .. 4) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @paths = ('/status', '/metrics', '/status?sort=cpu&limit=1',
            '/dash?status');
        my ($n, $bad) = (0, 0);
        while (time - $t0 < $secs && $n < 5000) {
            my $r = http('GET', $paths[$n % @paths], undef, undef, 5);
            $bad++ unless $r->{status} == 200
                && ($r->{content} =~ /offload_node_up|"redis":"ok"/);
            $n++;
        }
        spew(tmpdir() . "/client$k", "$n $bad");
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my $elapsed = time - $t0;
my $after = reads();
my ($total, $bad) = (0, 0);
for my $k (1 .. 4) {
    my ($n, $b) = split ' ', slurp(tmpdir() . "/client$k");
    $total += $n;
    $bad += $b;
}
diag(sprintf "%d requests from 4 clients in %.1f s: %d script runs",
    $total, $elapsed, $after - $before);
ok($total >= 100, "the clients made $total requests");
is($bad, 0, 'every one answered 200 with the nodes');
ok($after - $before <= int($elapsed) + 2,
    sprintf('%d script runs in %.1f s of polling (at most one a second)',
        $after - $before, $elapsed));

# ---- fresh: a node that appears is listed within two intervals
my $doc = '{"node":"cache-probe","pid":1,"heartbeat":1,"queues":'
    . '{"probe":{"state":"ok","workers":[]}}}';
redis_cmd('SET', 'offload:{ctl}:node:cache-probe', $doc);
redis_cmd('SADD', 'offload:{ctl}:nodes', 'cache-probe');
$t0 = time;
ok(wait_until(sub { status()->{queues}{probe} }, scaled(5), 'probe listed'),
    'the new node is listed');
my $seen = time - $t0;
ok($seen <= scaled(2.5),
    sprintf('within two intervals (%.2f s)', $seen));
redis_cmd('SREM', 'offload:{ctl}:nodes', 'cache-probe');
redis_cmd('DEL', 'offload:{ctl}:node:cache-probe');

# ---- Redis stops answering: readers are not held past the deadline
kill 'STOP', redis_pid();
sleep 1.2;                                  # the cached answer grows stale
my @answers;
for my $k (1 .. 3) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = http('GET', '/status', undef, undef, 10);
        spew(tmpdir() . "/stuck$k", sprintf("%d %.3f %s", $r->{status},
            $r->{ms} / 1000, ($r->{json} || {})->{redis} // '-'));
        POSIX::_exit(0);
    }
    push @answers, $pid;
}
waitpid($_, 0) for @answers;
for my $k (1 .. 3) {
    my ($code, $took, $redis) = split ' ', slurp(tmpdir() . "/stuck$k");
    is($code, 200, "reader $k answered while Redis is stopped");
    ok($took < scaled(2.5),
        "reader $k within the deadline ($took s, redis $redis)");
}
my $r = http('GET', '/status', undef, undef, 10);
ok($r->{ms} < scaled(2500),
    sprintf('a later reader too (%.0f ms)', $r->{ms}));
sleep 2.5;                                  # past three intervals
$r = http('GET', '/status', undef, undef, 10);
is(($r->{json} || {})->{redis}, 'unavailable',
    'an answer older than three intervals is not served');
ok($r->{ms} < scaled(2500),
    sprintf('that reader is not held either (%.0f ms)',
    $r->{ms}));
kill 'CONT', redis_pid();
ok(wait_until(sub { (status()->{redis} // '') eq 'ok' }, scaled(10),
    'status ok again'), 'once Redis answers again, so does status');
unlike(slurp(nginx_error_log()), qr/signal|alert/,
    'nothing alarming in the error log');

# ---- an answer larger than the zone: not kept, said so, still read once
# per interval
stop_nginx();
start_server_nginx(workers => 2, http => 'offload_status_cache 32k 1s;',
                   server => '    location = /status { offload_status; }');
my $big = '{"node":"big-probe","pid":1,"heartbeat":1,"pad":"'
    . ('x' x 60000) . '","queues":{}}';
redis_cmd('SET', 'offload:{ctl}:node:big-probe', $big);
redis_cmd('SADD', 'offload:{ctl}:nodes', 'big-probe');
ok(wait_until(sub { (status()->{redises}[0]{state} // '')
                    eq 'status_cache_full' }, scaled(5), 'cache full'),
    'a Redis whose answer does not fit reads as status_cache_full');
like(slurp(nginx_error_log()), qr/does not fit in offload_status_cache/,
    'the error log says to make the zone larger');
$before = reads();
$t0 = time;
my $n = 0;
$n++, status() while time - $t0 < 3;
$elapsed = time - $t0;
ok(reads() - $before <= int($elapsed) + 2,
    sprintf('%d reads for %d requests in %.1f s', reads() - $before, $n,
        $elapsed));
redis_cmd('SREM', 'offload:{ctl}:nodes', 'big-probe');
ok(wait_until(sub { (status()->{redis} // '') eq 'ok' }, scaled(5),
    'fits again'), 'once it fits again, it is served');

# ---- reloads that change the Redis set: 31 Redis (the databases of one)
# each time, 91 in all.  Before, the entries of the Redis no longer named
# stayed: the second set had the one entry left, the other 29 Redis
# read as unavailable for good.
stop_nginx();
my $node = node_name();
redis_cmds(map { ([ 'SELECT', $_ ],
    [ 'SET', "offload:{ctl}:node:db$_", qq({"node":"db$_","pid":1,)
      . '"heartbeat":1,"queues":{}}' ],
    [ 'SADD', 'offload:{ctl}:nodes', "db$_" ]) } 1 .. 90);

# an offload_status per database; the server's Redis is database 0
sub dbs_conf {
    my $locations = join '', map { "    location = /db$_ "
        . "{ offload_redis \@REDIS\@ db=$_; offload_status; }\n" } @_;
    return (workers => 2, http => <<"HTTP");
offload_status_cache 4m 200ms;
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis \@REDIS\@;
    location = /status { offload_status; }
$locations}
HTTP
}

# every Redis of @dbs read, each with its own node
sub answers_dbs {
    my $s = status();
    my @states = map { $_->{state} } @{ $s->{redises} || [] };
    return @states == @_ + 1 && !grep({ $_ ne 'ok' } @states)
        && join(' ', sort map { $_->{node} } @{ $s->{nodes} || [] })
           eq join(' ', sort $node, map { "db$_" } @_);
}

my @first = (1 .. 30);
start_nginx(dbs_conf(@first));
ok(wait_until(sub { answers_dbs(@first) }, scaled(5), '31 Redis read'),
    '31 Redis: each read, with its own node');

# (once the old workers are gone: they would read the old set again)
sub reload_to {
    my @dbs = @_;
    my %old = map { $_ => 1 } nginx_worker_pids();
    my $t0 = time;
    write_nginx_conf(dbs_conf(@dbs));
    kill 'HUP', nginx_pid();
    wait_until(sub { my @now = nginx_worker_pids();
        @now == 2 && !grep { $old{$_} } @now }, scaled(5), 'new workers');
    ok(wait_until(sub { answers_dbs(@dbs) }, scaled(5), 'reloaded set read'),
        sprintf('reloaded with databases %d-%d: each read, with its own '
            . 'node (%.2f s)', $dbs[0], $dbs[-1], time - $t0))
        or diag(explain([ grep { $_->{state} ne 'ok' }
                          @{ status()->{redises} || [] } ]));
}

# the second set while the first's entries are fresh (taken over), the
# third once the second's are stale (freed)
reload_to(31 .. 60);
sleep 0.7;                              # past three intervals unread
reload_to(61 .. 90);

done_testing();
