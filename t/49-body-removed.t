#!/usr/bin/perl
# A big body's key removed while nginx writes it (a FLUSHDB, an operator's
# DEL, its lifetime over): the slices after the first go by RPUSHX, so
# none makes the key again as a partial body with no lifetime (one an
# nginx worker dying before its UNLINK would leave in Redis for good).
# The request answers 503, no job is added, no key is left.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use BlackholeProxy;
use KeyspaceEvents;
use OffloadTest;

start_redis();
is(redis_cmd('XGROUP', 'CREATE', 'offload:{big}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a queue nobody reads');
redis_cmd('CONFIG', 'SET', 'notify-keyspace-events', 'Klg');

# nginx reaches Redis through a proxy that passes on the first slice's
# EXEC, then holds what follows (the next slice) until released
my $proxy = BlackholeProxy->start(redis_port(),
    hold_on => qr/\*1\r\n\$4\r\nEXEC\r\n/);
END { kill 'KILL', $proxy->pid if $proxy }
start_server_nginx(workers => 1, redis => '127.0.0.1:' . $proxy->port,
    server => <<'CONF') or give_up('nginx did not start');
    client_max_body_size 16m;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
CONF

my $events = KeyspaceEvents->start('offload:{big}:body:*');

my $s = send_post('/jobs/big', '"' . ('z' x 1500000) . '"');
my $key;
ok(wait_until(sub {
    ($key) = @{ redis_cmd('KEYS', 'offload:{big}:body:*') };
    $key;
}, scaled(10), 'body key'), "the body key's first slice written");
redis_cmd('DEL', $key // 'none');
$proxy->release;

my $r = read_answer($s, scaled(15));
is($r->{status}, 503, 'removed while written: 503');
is($r->{json} && $r->{json}{error}{message},
    "the job's body was lost in redis", 'saying the body was lost');

is(join(' ', $events->events), 'rpush expire del',
    'nothing made the key again once removed (its keyspace events)');
is(redis_cmd('EXISTS', $key // 'none') + redis_cmd('XLEN',
    'offload:{big}:jobs'), 0, 'no body key left, no job added');

finish();
