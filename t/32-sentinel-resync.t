#!/usr/bin/perl
# nginx's wait_replicas=all counts only the replicas that can acknowledge a
# write: SENTINEL REPLICAS entries whose master-link-status is "ok".  A
# replica whose replication is broken (here its AUTH to the master is
# refused; a full resync after a restart looks the same) is listed up by
# the sentinels, with its link "err".  Counted, WAIT 1 would never be met
# and every job would be 503 not_replicated until the link is back; not
# counted, jobs are accepted, 202 (WAIT 0).
# Async jobs: a sync one that ends within wait_timeout is answered anyway.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use SentinelTopology;

my $topo = start_sentinel_topology(name => 'jobs');
my $master = $topo->master_port;
redis_use($master);
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");

my $sentinels = 'sentinel://' . $topo->url;
ok(start_jobs_nginx(redis => $sentinels, server => <<"SERVER"), 'stack ready');
    location ~ ^/all/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=all wait_timeout=500ms;
        offload_pass \$1;
        offload_mode async;
    }
SERVER

my $n = 0;
sub job_answer { post_json('/all/echo', { n => ++$n }, scaled(5)) }
sub job_status { job_answer()->{status} }

ok(wait_until(sub { job_status() == 202 }, scaled(10), 'a replicated job'),
    'wait_replicas=all: 202 with the replica in sync');

# the replica's link as every sentinel sees it: 'ok', 'err', or undef
# while one of them lists it disconnected or down
my ($replica) = $topo->replica_ports;
ok($replica, "the master has a replica ($replica)");
sub link_seen {
    my %status;
    for my $s ($topo->sentinel_ports) {
        my $list = $topo->sentinel_cmd($s, 'SENTINEL', 'REPLICAS', 'jobs');
        return undef unless ref $list eq 'ARRAY';
        my ($r) = grep { $_->{port} == $replica } map { +{ @$_ } } @$list;
        return undef unless $r && $r->{flags} !~ /down|disconnected/;
        $status{ $r->{'master-link-status'} // '' } = 1;
    }
    my @seen = keys %status;
    return @seen == 1 ? $seen[0] : undef;
}

# the replica's own view of its link
sub replica_link {
    my $info = redis_cmd_at($replica, 'INFO', 'replication') // '';
    return $info =~ /^master_link_status:(\w+)/m ? $1 : '';
}

# ---- a replica the sentinels list disconnected for a moment ---------------

# What a failover's leader does to the replica it promotes (CLIENT KILL
# TYPE normal there): the other sentinels list it disconnected until they
# connect again.  Taken at once, that count (0) let WAIT 0 accept jobs on
# the master about to be demoted (t/32-sentinel-unheard under load, 1 run
# in 20: 4 of 5 accepted jobs lost).  A count of fewer replicas is taken
# only once it has stood 5 s.
my $log = nginx_error_log();
ok(wait_until(sub {
    redis_cmd_at($replica, 'CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME',
        'yes');
    slurp($log) =~ /wait_replicas=all: replicas up: 0\b/;
}, scaled(4), 'a count of 0'), 'the sentinels\' connections to the replica '
    . 'killed: nginx counts 0 replicas up');
unlike(slurp($log), qr/wait_replicas=all: replicas up: 0, says/,
    '... and does not take it at once');
like(slurp($log), qr/replicas up: 0 of 1, says sentinel \S+: taken if still/,
    '... says it waits');
ok(wait_until(sub { job_status() == 202 }, scaled(10), 'a job'),
    'wait_replicas=all: jobs accepted (WAIT 1) as before');

# the link broken: the replica's AUTH to the master is refused (the master
# has no password), so it cannot sync until masterauth is cleared
my $broken_at = length slurp($log);
redis_cmd_at($replica, 'CONFIG', 'SET', 'masterauth', 'nope');
redis_cmd_at($replica, 'CLIENT', 'KILL', 'TYPE', 'master');

# what the test waits on: every sentinel lists the replica up with its
# link to the master down (they read the replica's INFO every 10 s)
ok(wait_until(sub { (link_seen() // '') eq 'err' }, scaled(20),
    'the sentinels see the replica up, its link down'),
    'the sentinels see the broken replication');

# each nginx worker counts anew every second and takes a count of fewer
# replicas once it stood 5 s, each on its own (one may take it a tick after
# the other): jobs accepted again once every worker took it, while the
# replica still cannot sync
my $workers = () = nginx_worker_pids();
ok(wait_until(sub {
    my %took = map { $_ => 1 } substr(slurp($log), $broken_at)
        =~ /(\d+)#\d+: [^\n]*wait_replicas=all: replicas up: 0, says/g;
    keys %took >= $workers;
}, scaled(5) + 10, "all $workers nginx workers count 0"),
    'every nginx worker takes the count of 0 once it stood');
my $during = wait_until(sub {
    job_status() == 202 && replica_link() eq 'down';
}, scaled(5), 'a job accepted with the link down');
ok($during, 'wait_replicas=all: a job accepted (202) with the replica\'s '
    . 'link down');
my @next = map { job_answer() } 1 .. 3;
is_deeply([ map { $_->{status} } @next ], [ 202, 202, 202 ],
    '... and the next ones too')
    or diag(join "\n", (map { "$_->{status} $_->{content}" } @next),
            grep { /replicas up/ } split /\n/, slurp($log))
    if $during;
is(replica_link(), 'down', '... all while the link was down');

redis_cmd_at($replica, 'CONFIG', 'SET', 'masterauth', '');
ok(wait_until(sub { (link_seen() // '') eq 'ok' }, scaled(30),
    'the sentinels see the link up'), 'the replica caught up');
ok(wait_until(sub { job_status() == 202 }, scaled(10), 'a job WAITed for'),
    'wait_replicas=all: 202 with the replica in sync again');

finish();
