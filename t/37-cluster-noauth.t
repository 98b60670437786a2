#!/usr/bin/perl
# A Redis Cluster whose every node asks for a password nginx was not given
# (requirepass set after the fact, a rotation done on Redis first): each
# nginx worker warns of each seed's refusal in its first round, and goes on
# asking at its backoff's pace at info level, not a warning per seed and
# round for as long as it lasts (before: 59 in 6 s with three seeds and
# two workers); jobs meanwhile get 503 at once.  Once the password is gone the
# slot map is read again and jobs pass.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my @masters = $cl->master_ports;
my $ctl = $cl->owner_port('ctl');
my $q = $cl->queue_on($ctl);
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $q => 1 },
    conf => "queue $q { handler echo; }\n");
start_nginx(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
}
HTTP
ok(wait_until(sub { http('POST', "/jobs/$q", '{}')->{status} == 200 },
    scaled(15), 'jobs pass'), 'jobs pass on the cluster');

# the sidecar is stopped first: only nginx's lines are counted
stop_sidecar();
is($cl->cmd($_, 'CONFIG', 'SET', 'requirepass', 'rotated'), 'OK',
    "requirepass on $_") for @masters;
kill 'HUP', nginx_pid();        # new workers: new links, a first round
my $log = nginx_error_log();
my $seen = length slurp($log);
sub refusals { my @w = substr(slurp($log), $seen)
    =~ /\[warn\][^\n]*gave no usable slot map: NOAUTH/g; scalar @w }
ok(wait_until(sub { refusals() > 0 }, scaled(10), 'a warning'),
    'the refusal is warned of');
my $t0 = time;
wait_until(sub { time - $t0 > 6 }, 7, 'six seconds of refusals');
my $warned = refusals();
ok($warned <= 2 * @masters,
    "$warned warnings in 6 s: one round's seeds per nginx worker at most");
my $r = http('POST', "/jobs/$q", '{}');
is($r->{status}, 503, 'a job meanwhile: 503 at once');

redis_password('rotated');
for my $port (@masters) {
    redis_use($port);
    is(redis_cmd('CONFIG', 'SET', 'requirepass', ''), 'OK',
        "no password on $port");
}
redis_password(undef);
redis_use($ctl);
start_sidecar(redis => $cl->url, want => { $q => 1 },
    conf => "queue $q { handler echo; }\n");
ok(wait_until(sub { http('POST', "/jobs/$q", '{}')->{status} == 200 },
    scaled(15), 'jobs pass again'), 'without the password, jobs pass again');

finish();
