#!/usr/bin/perl
# offload_redis sentinel://: nginx finds the master through three real
# sentinels and follows a failover, both a SENTINEL FAILOVER (the old master
# stays up, writable until the sentinels demote it) and a SIGKILL of the
# master: its async submits land on the new master within 5 s (checked on
# the new master itself), and the job status reads from there.  With
# wait_replicas=1 an async submit is answered 202 only once a replica has
# the job: with the replica frozen (SIGSTOP) it gets 503 not_replicated
# after wait_timeout, not a hang.  The sidecar here points at the master by
# address and is moved by the test after each failover.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use SentinelTopology;

my $STREAM = 'offload:{echo}:jobs';

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
    [ '127.0.0.1:1 wait_replicas=0', qr/invalid parameter/ ],
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

my $topo = start_sentinel_topology(name => 'jobs');
my $master = $topo->master_port;
redis_use($master);
start_sidecar(conf => "queue echo { handler echo; workers 2; }\n");

my $sentinels = 'sentinel://' . $topo->url;
ok(start_jobs_nginx(redis => $sentinels, server => <<"SERVER"), 'stack ready');
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location ~ ^/safe/([^/]+)\$ {
        offload_redis $sentinels wait_replicas=1 wait_timeout=500ms;
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
ok($took >= 0.45 && $took < scaled(3),
    sprintf('... after the 500ms WAIT timeout (%.2f s), no hang', $took));
is(post_json('/async/echo', { n => 2 })->{status}, 202,
    'a location without wait_replicas does not wait for the replica');
$topo->signal_server($replica, 'CONT');
ok(wait_until(sub { post_json('/safe/echo', { n => 3 })->{status} == 202 },
    scaled(10), 'replicated again'), 'wait_replicas=1: 202 once the '
    . 'replica is back');

# ---- failovers ------------------------------------------------------------

# The stream entry of job $id on the Redis at $port, or undef.
sub entry_on {
    my ($port, $id) = @_;
    my $r = eval { redis_cmd_at($port, 'XRANGE', $STREAM, '-', '+') };
    for my $e (@{ ref $r eq 'ARRAY' ? $r : [] }) {
        my %f = @{ $e->[1] };
        return \%f if ($f{id} // '') eq $id;
    }
    return undef;
}

# Submits async jobs until one lands on a master other than $old; returns
# the seconds from $t0 to that 202 and the submits that landed on $old.
sub recover_from {
    my ($old, $t0, $what) = @_;
    my ($at, @on_old, %n, @seen);
    wait_until(sub {
        my $r = post_json('/async/echo', { at => time }, 2);
        $n{ join ' ', grep { defined } $r->{status},
            eval { $r->{json}{error}{code} } }++;
        push @seen, sprintf '%.2f:%d', time - $t0, $r->{status};
        my $id = $r->{status} == 202 ? $r->{json}{id} : undef;
        return 0 unless $id;
        my $new = $topo->master_port;
        if (defined $new && $new != $old && entry_on($new, $id)) {
            $at = time - $t0;
            return 1;
        }
        push @on_old, $id if entry_on($old, $id);
        0;
    }, scaled(15), "an async submit lands on the new master ($what)");
    diag(sprintf '%s: recovered in %s s; answers meanwhile: %s; %d submits '
        . 'on the old master', $what,
        defined $at ? sprintf('%.2f', $at) : 'never',
        join(', ', map { "$_ x$n{$_}" } sort keys %n), scalar @on_old);
    note("answers (s after the fault:status): @seen");
    return ($at, \@on_old);
}

# Points the sidecar at the new master (its own sentinel support is not
# this test's), then checks the job $id ran there and its status reads.
sub move_sidecar_and_check {
    my ($new, $what) = @_;
    stop_sidecar();
    redis_use($new);
    start_sidecar(conf => "queue echo { handler echo; workers 2; }\n");
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

$t0 = time;
my ($old, $new) = $topo->failover(scaled(20));
ok($new, "SENTINEL FAILOVER: master $old -> " . ($new // 'none'));
my ($at, $on_old) = recover_from($old, $t0, 'SENTINEL FAILOVER');
ok(defined $at && $at <= 5, 'SENTINEL FAILOVER: nginx submits to the new '
    . 'master within 5 s');
ok(!@$on_old, 'no submit lands on the old master once it is replaced')
    or diag("on the old master: @$on_old");
push @recovery, $at;
move_sidecar_and_check($new, 'after SENTINEL FAILOVER');

# the demoted master must be a replica again before the next failover
ok($topo->wait_ready(scaled(40)), 'old master back as a replica');

$t0 = time;
$old = $topo->kill_master('KILL');
$new = $topo->wait_master_change($old, scaled(30));
ok($new, "SIGKILL: master $old -> " . ($new // 'none'));
($at) = recover_from($old, $t0, 'SIGKILL of the master');
ok(defined $at && $at <= 5, 'SIGKILL: nginx submits to the new master '
    . 'within 5 s');
push @recovery, $at;
move_sidecar_and_check($new, 'after SIGKILL');

like(slurp(nginx_error_log()), qr/failover: jobs 127\.0\.0\.1 \d+/,
    'the workers heard +switch-master');
diag('recovery (s): ' . join ' ', map { defined ? sprintf '%.2f', $_ : '-' }
    @recovery);

finish();
