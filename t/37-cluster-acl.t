#!/usr/bin/perl
# The README's ACL rules on a Redis Cluster: every master has the users
# offload-nginx and offload-sidecar exactly as README.md documents them
# (t/38-redis-acl.t runs them on one Redis); nginx (offload_redis
# cluster://... user=offload-nginx) and the sidecar (redis cluster://...,
# redis_user offload-sidecar) pass sync jobs on queues on two masters, with
# offload_max_backlog's script and the status, across a slot moved; async
# jobs with their records, an Idempotency-Key, long polls, and the DELETE
# of a queued and of a running job (offload_cancel_running: the queue's
# cancel list); and no master denied anything (ACL LOG empty on each).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;
use AclRules;

my %rules = readme_acl_rules();
ok(%rules, 'README.md documents the ACL rules') or BAIL_OUT('no rules');

my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
for my $port (@masters) {
    for my $user ('offload-nginx', 'offload-sidecar') {
        is($cl->cmd($port, 'ACL', 'SETUSER', $user, @{ $rules{$user} }),
            'OK', "$user on $port");
    }
}
my $ctl = $cl->owner_port('ctl');
my ($other, $third) = grep { $_ != $ctl } @masters;
my $qa = $cl->queue_on($ctl);
my $qb = $cl->queue_on($other);
my $qh = $cl->queue_on($third);
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $qa => 1, $qb => 1, $qh => 1 },
    conf => "redis_user offload-sidecar;\npassword sidecar-secret;\n"
        . "queue $qa { handler echo; }\nqueue $qb { handler echo; }\n"
        . "queue $qh { handler sleep; workers 1; }\n");
start_nginx(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url} user=offload-nginx password=nginx-secret;
    location ~ ^/jobs/([^/]+)\$ {
        offload_pass \$1;
        offload_max_backlog 1000;
    }
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location /st/ { offload_jobs; offload_cancel_running on; }
    location = /status { offload_status; }
}
HTTP
ok(wait_until(sub {
    http('POST', "/jobs/$qa", '{}')->{status} == 200
        && http('POST', "/jobs/$qb", '{}')->{status} == 200;
}, scaled(15), 'both queues answer'), 'nginx answers on both queues');

sub jobs {
    my (@queues) = @_;
    my $ok = 0;
    for my $i (1 .. 20) {
        my $r = http('POST', "/jobs/$queues[$i % @queues]", qq({"i":$i}));
        $ok++ if $r->{status} == 200 && ($r->{json}{i} // 0) == $i;
    }
    return $ok;
}
is(jobs($qa, $qb), 20, '20 sync jobs on two masters, each its own result');
my $s;
ok(wait_until(sub {
    $s = http('GET', '/status')->{json};
    $s && $s->{queues}{$qa} && $s->{queues}{$qb};
}, scaled(10), 'status'), 'the status lists both queues');
is($cl->move_slot($cl->slot_of($qb), $third), $other,
    "the slot of $qb moved to $third");
is(jobs($qb), 20, '20 jobs after the move, each its own result');

# async jobs: records, Idempotency-Key, long polls, cancels
sub status_of {
    my ($id, $wait) = @_;
    return http('GET', "/st/$id" . ($wait ? "?wait=$wait" : ''))->{json}{status}
        // '';
}
my $done = 0;
for my $q ($qa, $qb) {
    my $r = http('POST', "/async/$q", '{"a":1}', { 'Idempotency-Key' => $q });
    my $again = http('POST', "/async/$q", '{"a":1}',
        { 'Idempotency-Key' => $q });
    my $id = $r->{json}{id} // '';
    $done++ if $r->{status} == 202 && ($again->{json}{id} // '') eq $id
        && status_of($id, 10) eq 'done';
}
is($done, 2, "async jobs on $qa and $qb: 202, the key's duplicate, the "
    . 'long poll answered done');
my $long = http('POST', "/async/$qh", '{"ms":30000}')->{json}{id} // '';
ok(wait_until(sub { status_of($long) eq 'running' }, scaled(10), 'running'),
    "a job runs on $qh");
my $queued = http('POST', "/async/$qh", '{"ms":1}')->{json}{id} // '';
is(http('DELETE', "/st/$queued")->{status}, 200, 'DELETE of a queued job');
is(http('DELETE', "/st/$long")->{status}, 200, 'DELETE of the running job');
ok(wait_until(sub {
    my $w = ((node_doc() || {})->{queues}{$qh}{workers} || [])->[0] || {};
    ($w->{last_exit} // '') eq 'cancelled';
}, scaled(10), 'killed'), 'its worker was killed (the queue\'s cancel list '
    . 'read)');

for my $port (@masters) {
    my $log = $cl->cmd($port, 'ACL', 'LOG');
    is(ref $log eq 'ARRAY' ? scalar @$log : -1, 0,
        "no denial on $port: ACL LOG is empty") or diag(explain($log));
}
unlike(slurp(nginx_error_log()), qr/NOPERM/, 'nginx logged no NOPERM');

done_testing();
