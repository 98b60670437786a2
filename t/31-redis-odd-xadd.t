#!/usr/bin/perl
# A job's XADD answered with something other than an entry id: no Redis
# does, a proxy or a "Redis-compatible" server in front of one may (a
# status "+OK", an integer).  nginx answered 202 "queued" for a job it knew
# nothing of (a reviewer found it by reading); now the answer is 503
# outcome_unknown, logged: the job may or may not be there.  Staged with a
# proxy whose answers to the job's connection stop once it sent the job
# (Redis took it), then a "+OK" written to nginx as if Redis had sent it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use BlackholeProxy;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
my $proxy = BlackholeProxy->start(redis_port(), mute_on => qr/odd-reply/);
start_async_nginx(workers => 1, redis => '127.0.0.1:' . $proxy->port);
ok(wait_until(sub { (post_json('/sync/echo', {})->{status} // 0) == 200 },
    scaled(15), 'ready'), 'stack ready, through the proxy');

my $s = send_post('/async/echo', '{"odd-reply":1}');
ok($proxy->inject_until("+OK\r\n", sub { slurp(nginx_error_log()) },
    scaled(10),
    qr/XADD to queue "echo" got a reply of type 5, not an entry id/),
    'the XADD answered "+OK": logged');
my $a = read_answer($s, scaled(10));
is($a->{status}, 503, 'answered 503, not 202') or diag(explain($a));
is(($a->{json} // {})->{error}{code}, 'outcome_unknown',
    '... outcome_unknown: the job may be there or not');
$proxy->stop;

finish();
