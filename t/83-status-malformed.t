#!/usr/bin/perl
# A malformed node document in the registry (another program, a sidecar of
# another version) leaves only itself out of offload_status and
# offload_metrics: the good nodes still show, the bad one is named in
# "malformed_nodes" and offload_node_malformed (offloadctl status too),
# and the answer is not a failed refresh ("unavailable") for the whole
# Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
CONF
ok(start_jobs_nginx(server => <<'SERVER'), 'stack ready');
location = /status { offload_status; }
location = /metrics { offload_metrics; }
SERVER

my $node = node_name();
my $prefix = 'offload:{ctl}:node:';

sub status { http('GET', '/status')->{json} || {} }

sub good_node_shows {
    my ($s) = @_;
    return ($s->{redis} // '') eq 'ok'
        && $s->{queues}{echo}
        && (grep { ($_->{node} // '') eq $node && $_->{queue} eq 'echo' }
            @{ $s->{workers} || [] }) == 2;
}

ok(wait_until(sub { good_node_shows(status()) }, scaled(10),
    'the node shows'), 'the good node and its two workers show');

# the shapes seen: a queue that is not an object, a handler histogram
# bucket that is not a number, a workers member that is not an array, a
# text that is not JSON, a p50 without its p99, a key that is not a string
my %bad = (
    'bad-queue'   => '{"node":"bad-queue","queues":{"echo":5}}',
    'bad-bucket'  => '{"node":"bad-bucket","queues":{"echo":{'
                     . '"handler_metrics":{"x":{"buckets":[[1,"x"]]}}}}}',
    'bad-workers' => '{"node":"bad-workers","queues":{"echo":'
                     . '{"workers":7}}}',
    'bad-json'    => 'not {json',
    'bad-p99'     => '{"node":"bad-p99","queues":{"echo":'
                     . '{"run_p50_ms":3,"run_p99_ms":"x"}}}',
    'bad-type'    => undef,
    'bad-number'  => '{"node":"bad-number","queues":{"echo":'
                     . '{"workers":[{"slot":0,"pid":1e999}]}}}',
);

sub malformed {
    my ($s) = @_;
    return { map { $_->{node} => $_->{error} }
             @{ $s->{malformed_nodes} || [] } };
}

# a bad document under $name in the registry (undef: a hash, not a string)
sub put_bad {
    my ($name) = @_;
    if (defined $bad{$name}) {
        redis_cmd('SET', "$prefix$name", $bad{$name});
    } else {
        redis_cmd('HSET', "$prefix$name", 'a', 'b');
    }
    redis_cmd('SADD', 'offload:{ctl}:nodes', $name);
}

for my $name (sort keys %bad) {
    put_bad($name);

    my $s;
    wait_until(sub { $s = status(); exists malformed($s)->{$name} },
        scaled(10), "$name named");
    ok(exists malformed($s)->{$name}, "$name: named in malformed_nodes")
        or diag(explain($s->{redises}));
    ok(good_node_shows($s), "$name: the good node still shows");
    diag("$name: " . (malformed($s)->{$name} // 'not named'));

    redis_cmd('DEL', "$prefix$name");
    redis_cmd('SREM', 'offload:{ctl}:nodes', $name);
}

# figures JSON cannot hold once added up: well-formed documents, not
# malformed ones, and the answer is still the registry's, not
# "unavailable" for the whole Redis
for my $n (qw(huge1 huge2)) {
    redis_cmd('SET', "$prefix$n", qq({"node":"$n","queues":{"echo":)
        . '{"jobs_per_s":1.7e308,"workers":[{"slot":0,"pid":1}]}}}');
    redis_cmd('SADD', 'offload:{ctl}:nodes', $n);
}
my $huge;
ok(wait_until(sub { $huge = status();
    2 == grep { ($_->{node} // '') =~ /^huge/ } @{ $huge->{nodes} || [] } },
    scaled(10), 'huge nodes'), 'documents whose figures overflow: shown')
    or diag(explain($huge));
is($huge->{redis}, 'ok', 'the registry is read, not unavailable');
ok(good_node_shows($huge), 'the good node still shows');
ok(exists $huge->{queues}{echo}{jobs_per_s}
    && !defined $huge->{queues}{echo}{jobs_per_s},
    'a sum past the largest double: null');
# a worker with a user CPU figure and no system one: the metrics script
# divided the missing one (a Lua error: the whole answer unavailable)
redis_cmd('SET', "${prefix}cpuless", '{"node":"cpuless","queues":{"echo":'
    . '{"workers":[{"slot":0,"cpu_user":1}]}}}');
redis_cmd('SADD', 'offload:{ctl}:nodes', 'cpuless');
my $mt;
ok(wait_until(sub { $mt = http('GET', '/metrics')->{content} // '';
    $mt =~ /^offload_node_up\{node="cpuless"\} 1$/m }, scaled(10),
    'cpuless'), '/metrics with a worker without cpu_sys') or diag($mt);
like($mt, qr/^offload_redis_up(?:\{[^}]*\})? 1$/m, 'the Redis still up');
for my $n (qw(huge1 huge2 cpuless)) {
    redis_cmd('DEL', "$prefix$n");
    redis_cmd('SREM', 'offload:{ctl}:nodes', $n);
}

# all of them at once, in /status and /metrics
put_bad($_) for sort keys %bad;

my $s;
wait_until(sub { $s = status(); keys %{ malformed($s) } == keys %bad },
    scaled(10), 'all named');
is_deeply([ sort keys %{ malformed($s) } ], [ sort keys %bad ],
    'every malformed document named');
ok(good_node_shows($s), 'the good node still shows among them');
is(scalar @{ $s->{nodes} }, 1, 'the malformed ones are not nodes');

my $m = http('GET', '/metrics');
is($m->{status}, 200, '/metrics: 200');
my $t = $m->{content} // "";
like($t, qr/^offload_node_up\{node="\Q$node\E"\} 1$/m,
    '/metrics: the good node is up');
like($t, qr/^offload_worker_rss_bytes\{node="\Q$node\E",queue="echo",/m,
    '/metrics: its workers');
like($t, qr/^offload_redis_up(?:\{[^}]*\})? 1$/m, '/metrics: the Redis is up');
for my $name (sort keys %bad) {
    like($t, qr/^offload_node_malformed\{node="\Q$name\E"\} 1$/m,
        "/metrics: $name malformed");
    unlike($t, qr/^offload_node_up\{node="\Q$name\E"\}/m,
        "/metrics: $name not up");
}
SKIP: {
    skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
    my $file = tmpdir() . '/metrics.txt';
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $t;
    close($fh);
    my $out = `promtool check metrics < $file 2>&1`;
    is($?, 0, 'promtool check metrics passes') or diag($out);
}

# offloadctl reads the nodes with the same script
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl status 2>&1`;
is($?, 0, 'offloadctl status: exit 0') or diag($out);
like($out, qr/^\Q$node\E /m, 'offloadctl status: the good node');
for my $name (sort keys %bad) {
    like($out, qr/^\Q$name\E +malformed registry entry, left out: \S/m,
        "offloadctl status: $name malformed");
}

# --json: one object, the bad ones named with their reason
$out = `$ctl --json status 2>&1`;
is($?, 0, 'offloadctl --json status: exit 0') or diag($out);
my $st = json_decode($out);
$st = {} unless ref $st eq 'HASH';
is_deeply([ map { $_->{node} } @{ $st->{nodes} || [] } ], [ $node ],
    'offloadctl --json status: "nodes", the good node alone') or diag($out);
is_deeply({ map { $_->{node} => ($_->{error} // '') =~ /\S/ ? 1 : 0 }
            @{ $st->{malformed_nodes} || [] } },
    { map { $_ => 1 } keys %bad },
    'offloadctl --json status: "malformed_nodes", each with a reason')
    or diag($out);

# gone again: nothing named
redis_cmd('DEL', map { "$prefix$_" } keys %bad);
redis_cmd('SREM', 'offload:{ctl}:nodes', keys %bad);
ok(wait_until(sub { $s = status(); !@{ $s->{malformed_nodes} || [1] } },
    scaled(10), 'none named'), 'deleted: malformed_nodes empty');
unlike(http('GET', '/metrics')->{content} // '',
    qr/^offload_node_malformed\{/m, 'deleted: no offload_node_malformed');

# a crash report that is no JSON object (another program's, or cut short)
# is left out: pasted in, it made the whole answer invalid JSON
redis_cmd('LPUSH', 'offload:{ctl}:crashes', '{"node":"x","pid":1}',
    'not json {', '42');
my $crashes;
ok(wait_until(sub {
    $crashes = (http('GET', '/status')->{json} || {})->{crashes};
    $crashes && @$crashes == 1
}, scaled(10), 'crashes'), 'a bad crash report: /status is JSON, with the '
    . 'good report only');
is($crashes && $crashes->[0]{node}, 'x', 'the good one');

# a document written by hand with whitespace (valid JSON, not a sidecar's
# compact one) around its queues' "workers": the lean view (without the
# workers) is JSON still (a fuzzer found ", }" and "{ ," left behind)
for my $shape ([ 'spaced1', qq({"node":"spaced1","pid":1,"queues":{"q":)
                   . qq({"state":"ok",\t"workers"\r\n:\t[{"slot":0}]}}}) ],
               [ 'spaced2', qq({"node":"spaced2","pid":1,"queues":{"q":)
                   . qq({"workers":[{"slot":0}] ,"state":"ok"}}}) ]) {
    my ($name, $json) = @$shape;
    redis_cmd('SET', "$prefix$name", $json, 'EX', 60);
    redis_cmd('SADD', 'offload:{ctl}:nodes', $name);
}
my $lean;
ok(wait_until(sub { $lean = status();
    2 == grep { $_->{node} =~ /^spaced/ } @{ $lean->{nodes} || [] } },
    scaled(10), 'spaced nodes'), 'documents spaced by hand: the status '
    . 'answer is JSON, with them') or diag(http('GET', '/status')->{content});
my %state = map { $_->{node} => $_->{queues}{q} }
    grep { $_->{node} =~ /^spaced/ } @{ $lean->{nodes} || [] };
is_deeply(\%state,
    { spaced1 => { state => 'ok' }, spaced2 => { state => 'ok' } },
    '... each queue without its workers, its other members kept');

done_testing();
