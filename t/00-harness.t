#!/usr/bin/perl
# The harness itself, against a bare redis-server and a plain nginx without
# the module: process control, the RESP client, free ports, the HTTP clients.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $port = start_redis();
ok($port > 0, "redis on port $port");
is(redis_cmd('PING'), 'PONG', 'PING');
is(redis_cmd('SET', 'k', "a\r\nb"), 'OK', 'SET binary value');
is(redis_cmd('GET', 'k'), "a\r\nb", 'GET returns it verbatim');
is(redis_cmd('GET', 'nope'), undef, 'nil is undef');
is(redis_cmd('INCR', 'n'), 1, 'integer reply');
is_deeply(redis_cmd('MGET', 'k', 'nope'), ["a\r\nb", undef], 'array reply');
like(redis_cmd('FOO')->{error}, qr/unknown command/, 'error reply');

stop_redis();
ok(!eval { redis_cmd('PING'); 1 }, 'redis_cmd dies while redis is down');
start_redis();
is(redis_port(), $port, 'restarted on the same port');
is(redis_cmd('GET', 'k'), undef, 'and empty (no persistence)');

start_nginx(module => 0, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    location / { return 200 "ok"; }
}
HTTP
my @workers = nginx_worker_pids();
is(scalar @workers, 2, 'two nginx workers');

my $r = http('POST', '/x', '{"a":1}');
is($r->{status}, 200, 'http POST');
is($r->{content}, 'ok', 'body');

my @res = concurrent_posts(50, 10, sub { qq({"c":$_[0],"j":$_[1]}) },
    path => '/');
is(scalar @res, 500, '500 responses over 50 connections');
is(scalar(grep { $_->{status} == 200 && $_->{content} eq 'ok' } @res), 500,
    'all 200 ok');

my $t0 = Time::HiRes::time();
ok(!wait_until(sub { 0 }, 0.2, 'nothing (expected timeout)'),
    'wait_until times out');
my $dt = Time::HiRes::time() - $t0;
ok($dt >= 0.2 && $dt < 1, 'after its deadline');

finish();
