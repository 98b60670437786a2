#!/usr/bin/perl
# offload_redis sentinel://: nginx finds the master through three real
# sentinels and follows a failover, both a SENTINEL FAILOVER (the old master
# stays up, writable until the sentinels demote it) and a SIGKILL of the
# master: its async submits land on the new master within 5 s (checked on
# the new master itself), and the job status reads from there.  With
# wait_replicas=1 an async submit is answered 202 only once a replica has
# the job: with the replica frozen (SIGSTOP) it gets 503 not_replicated
# after wait_timeout, not a hang; a sync job that has not ended by then
# too.  The SIGKILL comes under load (8 connections submitting), and every
# 202 is looked for on the new master.  A peer whose only sentinel is
# frozen through a failover answers 503 and reaches the new master once
# its sentinel answers.  The sidecar here points at the master by address
# and is moved by the test after each failover.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;
use SentinelTopology;

# The sidecar stays on the old master: a heartbeat of 3 s keeps its node
# (TTL 3 heartbeats) in the new master's registry, which nginx reads, for
# 9 s after a failover, not 5 s: jobs are not refused no_workers meanwhile.
my $HEARTBEAT = '3s';
my $QUEUES = "queue echo { handler echo; workers 2; }\n"
    . "queue sleep { handler sleep; workers 1; }\n";

# the directive's checks, before anything runs
for my $case (
    [ 'sentinel://127.0.0.1:1', qr/invalid sentinel address/ ],
    [ 'sentinel://127.0.0.1:1/', qr/invalid sentinel address/ ],
    [ 'sentinel://127.0.0.1:1,/m', qr/invalid sentinel address/ ],
    [ 'sentinel://unix:/tmp/s/m', qr/invalid sentinel address/ ],
    [ 'sentinel://127.0.0.1:1/m wait_timeout=1s',
      qr/"wait_timeout=" needs "wait_replicas="/ ],
    [ 'sentinel://127.0.0.1:1/m wait_replicas=1 wait_timeout=5s',
      qr/WAIT holds up the command connection/ ],
    [ '127.0.0.1:1 wait_replicas=17',
      qr/invalid parameter "wait_replicas=17" in "offload_redis" directive: wait_replicas= from 0 \(no WAIT\) to 16, or all/ ],
    [ '127.0.0.1:1 wait_replicas=99999999999', qr/from 0 \(no WAIT\) to 16/ ],
    [ '127.0.0.1:1 wait_replicas=0 wait_timeout=1s',
      qr/"wait_timeout=" needs "wait_replicas=" of 1 or more/ ],
    [ '127.0.0.1:1 db=65536',
      qr/invalid parameter "db=65536" in "offload_redis" directive: db= from 0 to 65535/ ],
    [ '127.0.0.1:1 db=-1', qr/db= from 0 to 65535/ ],
    [ '127.0.0.1:1 wait_replicas=all',
      qr/"wait_replicas=all" needs a sentinel:\/\/ or cluster:\/\/ address/ ],
    [ 'sentinel://127.0.0.1:1/m wait_replicas=alll', qr/invalid parameter/ ],
) {
    my ($rc, $out) = nginx_test(http => "server { listen 127.0.0.1:1; "
        . "offload_redis $case->[0]; location / { offload_pass q; } }");
    ok($rc != 0 && $out =~ $case->[1], "offload_redis $case->[0]: refused")
        or diag($out);
}
my ($rc, $out) = nginx_test(http => 'server { listen 127.0.0.1:1; '
    . 'offload_redis sentinel://127.0.0.1,[::1]:26380/m wait_replicas=2; '
    . 'location / { offload_pass q; } }');
is($rc, 0, 'sentinel://host,[v6]:port/name wait_replicas=2 is taken')
    or diag($out);
# the sidecar's bounds: 0 (no WAIT, its default) and 16, db 65535
($rc, $out) = nginx_test(http => 'server { listen 127.0.0.1:1; '
    . 'offload_redis 127.0.0.1:1 wait_replicas=0 db=65535; '
    . 'location / { offload_pass q; } '
    . 'location /b { offload_redis 127.0.0.1:2 wait_replicas=16; '
    . 'offload_pass q; } }');
is($rc, 0, 'wait_replicas=0, wait_replicas=16 and db=65535 are taken')
    or diag($out);
($rc, $out) = nginx_test(http => 'server { listen 127.0.0.1:1; '
    . 'offload_redis sentinel://127.0.0.1:1/m wait_replicas=all '
    . 'wait_timeout=200ms; location / { offload_pass q; } }');
is($rc, 0, 'sentinel://.../name wait_replicas=all is taken') or diag($out);

my $topo = start_sentinel_topology(name => 'jobs');
my $master = $topo->master_port;
redis_use($master);
start_sidecar(heartbeat => $HEARTBEAT,
    conf => $QUEUES);

my $sentinels = 'sentinel://' . $topo->url;
my ($s1, $s2) = $topo->sentinel_ports;
my $one = "sentinel://127.0.0.1:$s1/jobs";     # a peer that asks only $s1
ok(start_jobs_nginx(redis => $sentinels, server => <<"SERVER"), 'stack ready');
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location ~ ^/safe/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=1 wait_timeout=500ms;
        offload_pass \$1;
        offload_mode async;
    }
    location ~ ^/slowsafe/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=1 wait_timeout=1500ms;
        offload_pass \$1;
        offload_mode async;
    }
    location ~ ^/all/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=all wait_timeout=500ms;
        offload_pass \$1;
        offload_mode async;
    }
    location ~ ^/safesync/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=1 wait_timeout=500ms;
        offload_pass \$1;
    }
    location ~ ^/one/([^/]+)\$ {
        offload_redis $one;
        offload_pass \$1;
        offload_mode async;
    }
    location /status/ { offload_jobs; }
SERVER

my $r = post_json('/jobs/echo', { hello => 'sentinel' });
is($r->{status}, 200, 'a sync job comes through nginx found by sentinel');
is_deeply($r->{json}, { hello => 'sentinel' }, 'with its result');

# ---- wait_replicas=1 ------------------------------------------------------

ok(wait_until(sub { post_json('/safe/echo', { n => 0 })->{status} == 202 },
    scaled(10), 'a replicated async job'), 'wait_replicas=1: 202 with the '
    . 'replica up');
ok(wait_until(sub { post_json('/all/echo', { n => 0 })->{status} == 202 },
    scaled(10), 'an async job WAITed for all'), 'wait_replicas=all: 202 '
    . 'with the replica up');
$r = post_json('/safesync/echo', { sync => 1 });
is($r->{status}, 200, 'wait_replicas=1, sync: the result');
is_deeply($r->{json}, { sync => 1 }, '... as without');

my ($replica) = $topo->replica_ports;
ok($replica, "the master has a replica ($replica)");
$topo->signal_server($replica, 'STOP');
my $t0 = time;
$r = post_json('/safe/echo', { n => 1 }, scaled(10));
my $took = time - $t0;
is($r->{status}, 503, 'wait_replicas=1, replica frozen: 503');
is($r->{json}{error}{code}, 'not_replicated', '... not_replicated')
    or diag($r->{content});
ok($r->{headers}{'retry-after'}, '... with Retry-After');
my $unreplicated = $r->{json}{error}{id} // '';
like($unreplicated, qr/^[0-9a-f]{32}$/, '... naming the job it may still run');
is($r->{headers}{'x-offload-job-id'}, $unreplicated, '... X-Offload-Job-Id');
like($r->{json}{error}{status_url} // '', qr{/\Q$unreplicated\E$},
    '... and its status_url');
is(http('GET', "/status/$unreplicated")->{status}, 200,
    '... whose record reads at the jobs endpoint');
ok($took >= 0.45 && $took < scaled(3),
    sprintf('... after the 500ms WAIT timeout (%.2f s), no hang', $took));
is(post_json('/async/echo', { n => 2 })->{status}, 202,
    'a location without wait_replicas does not wait for the replica');
$t0 = time;
$r = post_json('/safesync/sleep', { ms => 3000 }, scaled(10));
$took = time - $t0;
is($r->{status}, 503, 'wait_replicas=1, sync job, replica frozen: 503');
is($r->{json}{error}{code}, 'not_replicated', '... not_replicated')
    or diag($r->{content});
like($r->{json}{error}{id} // '', qr/^[0-9a-f]{32}$/, '... with its id');
ok(!exists $r->{json}{error}{status_url}, '... and no record to read');
ok($took < 2.5, sprintf('... after the WAIT timeout (%.2f s), not the job',
    $took));
# an async job whose deadline passes while its WAIT counts: queued, not
# known to be on a replica (before: taken for a sync job at its deadline,
# it was answered 504 after a last look for its result)
$r = http('POST', '/slowsafe/echo', '{"n":7}',
    { 'X-Offload-Timeout' => '0.2' }, scaled(10));
is($r->{status}, 503, 'wait_replicas=1, async job, deadline before WAIT: 503')
    or diag($r->{content});
is($r->{json}{error}{code}, 'not_replicated', '... not_replicated');
$unreplicated = $r->{json}{error}{id} // '';
like($unreplicated, qr/^[0-9a-f]{32}$/, '... with its id');
is(http('GET', "/status/$unreplicated")->{status}, 200,
    '... whose record reads at the jobs endpoint');
# the sentinels flag the frozen replica s_down after down-after (1 s): it
# cannot be promoted, so wait_replicas=all no longer waits for it
ok(wait_until(sub { post_json('/all/echo', { n => 4 })->{status} == 202 },
    scaled(10), 'the frozen replica left out'), 'wait_replicas=all, '
    . 'replica frozen: 202 once the sentinels see it down');
is(post_json('/safe/echo', { n => 5 }, scaled(10))->{status}, 503,
    '... while wait_replicas=1 still refuses');
like(slurp(nginx_error_log()), qr/wait_replicas=all: replicas up: 0,/,
    '... counted 0 replicas up (error log)');
my $logged = length slurp(nginx_error_log());
$topo->signal_server($replica, 'CONT');
ok(wait_until(sub { substr(slurp(nginx_error_log()), $logged)
    =~ /wait_replicas=all: replicas up: 1,/ }, scaled(10),
    'counted again'), 'wait_replicas=all: the replica back is counted '
    . 'again (error log)');
ok(wait_until(sub { post_json('/safe/echo', { n => 3 })->{status} == 202 },
    scaled(10), 'replicated again'), 'wait_replicas=1: 202 once the '
    . 'replica is back');
ok(wait_until(sub { post_json('/all/echo', { n => 6 })->{status} == 202 },
    scaled(10), 'replicated again'), 'wait_replicas=all: 202 once the '
    . 'replica is back');

# ---- failovers ------------------------------------------------------------

# How many async jobs the Redis at $port has records of.
sub job_count {
    my ($port) = @_;
    my $keys = eval { redis_cmd_at($port, 'KEYS', 'offload:job:*') };
    return ref $keys eq 'ARRAY' ? scalar @$keys : 0;
}

# Whether the Redis at $port has the async job $id (its record: the entry
# itself may be run and deleted already).
sub job_on {
    my ($port, $id) = @_;
    return eval { redis_cmd_at($port, 'EXISTS', record_key($id)) } // 0;
}

# The ids of the async jobs the Redis at $port has records of, as a hash:
# one KEYS for the thousands of jobs of a load, not one EXISTS each.
sub jobs_on {
    my ($port) = @_;
    my $keys = eval { redis_cmd_at($port, 'KEYS', 'offload:job:*') };
    return { map { /^offload:job:\{[^}]*\}:(.+)$/ ? ($1 => 1) : () }
        ref $keys eq 'ARRAY' ? @$keys : () };
}

# From the fault on, submits async jobs, in turn without (/async) and with
# wait_replicas=1 (/safe), until one without lands on a new master;
# returns the seconds from $t0 to that 202, the new master, and, per path,
# the ids answered 202 that the new master does not have: accepted jobs
# the failover lost.  (With wait_replicas=1, the new master has no replica
# until the sentinels make the old one its replica again, if it lives:
# /safe answers not_replicated meanwhile.)
sub through_failover {
    my ($old, $t0, $what) = @_;
    my ($at, $new, %accepted, %n, @seen);
    my $i = 0;
    wait_until(sub {
        my $path = $i++ % 2 ? '/safe/echo' : '/async/echo';
        my $r = post_json($path, { i => $i }, 3);
        $n{ join ' ', grep { defined } $r->{status},
            eval { $r->{json}{error}{code} } }++;
        push @seen, sprintf '%.2f:%s:%d', time - $t0, substr($path, 1, 1),
            $r->{status};
        my $id = $r->{status} == 202 ? $r->{json}{id} : undef;
        return 0 unless $id;
        push @{ $accepted{$path} }, $id;
        return 0 if $path eq '/safe/echo';
        my $m = $topo->master_port;
        return 0 unless defined $m && $m != $old && job_on($m, $id);
        $new = $m;
        $at = time - $t0;
    }, scaled(20), "async submits land on the new master ($what)");
    my %lost = map { my $p = $_;
        ($p => [ grep { !defined $new || !job_on($new, $_) }
                 @{ $accepted{$p} } ]) } keys %accepted;
    diag(sprintf '%s: recovered in %s s; answers meanwhile: %s; accepted '
        . 'and lost: %d of %d without WAIT, %d of %d with wait_replicas=1',
        $what, defined $at ? sprintf('%.2f', $at) : 'never',
        join(', ', map { "$_ x$n{$_}" } sort keys %n),
        map { (scalar @{ $lost{$_} || [] }, scalar @{ $accepted{$_} || [] }) }
        '/async/echo', '/safe/echo');
    note("answers (s after the fault:path:status): @seen");
    return ($at, $new, \%lost);
}

# Points the sidecar at the new master (its own sentinel support is not
# this test's), then checks the job $id ran there and its status reads.
sub move_sidecar_and_check {
    my ($new, $what) = @_;
    stop_sidecar();
    redis_use($new);
    start_sidecar(heartbeat => $HEARTBEAT,
    conf => $QUEUES);
    # nginx learns of the node from the registry it reads every second
    my $r;
    ok(wait_until(sub {
        $r = post_json('/async/echo', { after => $what });
        $r->{status} == 202;
    }, scaled(10), 'async submit accepted'),
        "$what: async submit after the sidecar moved")
        or diag($r->{content});
    my $id = $r->{json}{id} // '';
    ok(wait_until(sub {
        (http('GET', "/status/$id")->{json}{status} // '') eq 'done'
    }, scaled(15), 'job done'), "$what: its status reads done");
    is(post_json('/jobs/echo', { n => $what })->{status}, 200,
        "$what: sync jobs flow again");
}

my @recovery;

# SENTINEL FAILOVER: the old master stays up and writable until the
# sentinels demote it, seconds later
my $old = $topo->master_port;
$r = $topo->request_failover;
$t0 = time;
is($r, 'OK', 'SENTINEL FAILOVER') or diag(explain $r);
my ($at, $new, $lost) = through_failover($old, $t0, 'SENTINEL FAILOVER');
ok($new, "SENTINEL FAILOVER: master $old -> " . ($new // 'none'));
ok(defined $at && $at <= 5, 'SENTINEL FAILOVER: nginx submits to the new '
    . 'master within 5 s');
is(scalar @{ $lost->{'/safe/echo'} || [] }, 0,
    'wait_replicas=1: no accepted job lost');
push @recovery, $at;
move_sidecar_and_check($new, 'after SENTINEL FAILOVER');

# the demoted master must be a replica again before the next failover
ok($topo->wait_ready(scaled(40)), 'old master back as a replica');

# SIGKILL of the master under load: two children keep 4 connections each
# submitting async jobs, one without and one with wait_replicas=1, from
# before the kill until some seconds after; then every 202 is looked up on
# the new master.
sub start_loader {
    my ($path) = @_;
    my $file = tmpdir() . '/load' . ($path =~ tr{/}{_}r) . '.json';
    my $pid = fork // die "fork: $!";
    return ($pid, $file) if $pid;
    my @all;
    my $until = time + scaled(8);
    while (time < $until) {
        push @all, map { { path => $path, status => $_->{status},
            at => $_->{at}, id => eval { json_decode($_->{content})->{id} },
            code => eval { json_decode($_->{content})->{error}{code} } } }
            concurrent_posts(4, 10, sub { '{}' }, path => $path,
                timeout => scaled(10));
    }
    spew($file, json_encode(\@all));
    POSIX::_exit(0);
}
my @loaders = map { [ start_loader($_) ] } '/async/echo', '/safe/echo';
ok(wait_until(sub { job_count($old) >= 50 }, scaled(10), 'load running'),
    'load on the master');
$t0 = time;
$old = $topo->kill_master('KILL');
ok(wait_until(sub { !grep { waitpid($_->[0], POSIX::WNOHANG()) == 0 }
    @loaders }, scaled(60), 'load done'), 'the load ran through the failover');
$new = $topo->wait_master_change($old, scaled(30));
ok($new, "SIGKILL: master $old -> " . ($new // 'none'));
my $res = [ map { @{ json_decode(slurp($_->[1])) || [] } } @loaders ];
my %by = (map { ($_ => []) } '/async/echo', '/safe/echo');
push @{ $by{ $_->{path} } }, $_ for @$res;
my $on_new = defined $new ? jobs_on($new) : {};
my ($down) = sort { $a <=> $b } map { $_->{at} }
    grep { $_->{at} > $t0 && $_->{status} != 202 } @$res;
my ($up) = sort { $a <=> $b } map { $_->{at} }
    grep { $_->{status} == 202 && $_->{at} > ($down // $t0)
           && $on_new->{ $_->{id} // '' } } @{ $by{'/async/echo'} };
$at = defined $up ? $up - $t0 : undef;
my %lost = map { my $p = $_; ($p => scalar grep {
    $_->{status} == 202 && !$on_new->{ $_->{id} // '' } } @{ $by{$p} }) }
    keys %by;
my (%n, %span);
for (@$res) {
    my $k = join ' ', grep { defined } $_->{status}, $_->{code};
    $n{$k}++;
    my $t = $_->{at} - $t0;
    $span{$k}[0] = $t if !defined $span{$k}[0] || $t < $span{$k}[0];
    $span{$k}[1] = $t if !defined $span{$k}[1] || $t > $span{$k}[1];
}
note(join '; ', map { sprintf '%s from %.2f to %.2f s', $_, @{ $span{$_} } }
    sort keys %span);
diag(sprintf 'SIGKILL of the master under load: recovered in %s s; '
    . 'answers: %s; accepted and lost: %d of %d without WAIT, %d of %d with '
    . 'wait_replicas=1', defined $at ? sprintf('%.2f', $at) : 'never',
    join(', ', map { "$_ x$n{$_}" } sort keys %n),
    map { ($lost{$_}, scalar grep { $_->{status} == 202 } @{ $by{$_} }) }
    '/async/echo', '/safe/echo');
ok(defined $at && $at <= 5, 'SIGKILL: nginx submits to the new master '
    . 'within 5 s');
is($lost{'/safe/echo'}, 0, 'wait_replicas=1: no accepted job lost');
ok(!(grep { $_->{status} != 202 && $_->{status} != 503 } @$res),
    'every other answer is a 503');
push @recovery, $at;
move_sidecar_and_check($new, 'after SIGKILL');

# A peer whose only sentinel is frozen through a failover hears no
# +switch-master; the demotion of its old master closes its connections
# (the sentinels kill the old master's clients), and no sentinel answering
# is a Redis that is down: 503 redis_unavailable, never a write to the
# demoted master.  Once its sentinel answers again (maybe with the old
# master first, until it hears of the failover: READONLY drops that
# connection), the peer is on the new master.
$topo->start_server($new);
ok($topo->wait_ready(scaled(30)), 'a new replica');
$old = $topo->master_port;
is(post_json('/one/echo', {})->{status}, 202, "/one: on master $old");
kill 'STOP', proc_pid("sentinel-$s1");
$r = $topo->request_failover($s2);
is($r, 'OK', "SENTINEL FAILOVER by $s2, $s1 frozen") or diag(explain $r);
ok(wait_until(sub {
    my $role = eval { redis_cmd_at($old, 'ROLE') };
    ref $role eq 'ARRAY' && $role->[0] eq 'slave';
}, scaled(30), 'old master demoted'), "old master $old demoted");
ok(wait_until(sub {
    my $r = post_json('/one/echo', {});
    $r->{status} == 503
        && ($r->{json}{error}{code} // '') eq 'redis_unavailable';
}, scaled(10), '/one: 503'), '/one: 503 redis_unavailable, its sentinel '
    . 'frozen');
$t0 = time;
kill 'CONT', proc_pid("sentinel-$s1");
$new = $topo->sentinel_master($s2);
my $id;
ok(wait_until(sub {
    my $r = post_json('/one/echo', {});
    $id = $r->{json}{id} if $r->{status} == 202;
    $id && job_on($new, $id);
}, scaled(20), '/one on the new master'), "/one: on the new master $new "
    . 'once its sentinel answers');
diag(sprintf '/one: on the new master %.2f s after its sentinel thawed%s',
    time - $t0, slurp(nginx_error_log()) =~ /READONLY/
    ? ', after a READONLY' : '');

like(slurp(nginx_error_log()), qr/failover: jobs 127\.0\.0\.1 \d+/,
    'the workers heard +switch-master');
diag('recovery (s): ' . join ' ', map { defined ? sprintf '%.2f', $_ : '-' }
    @recovery);

finish();
