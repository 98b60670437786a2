#!/usr/bin/perl
# A big body's first slice half written when its request goes, on a Redis
# whose EXEC is renamed away: nginx finishes the slice blank and sends the
# rest of its transaction (PEXPIRE, EXEC) with no request to answer.  That
# EXEC is refused with its MULTI left open, and every later command of the
# bulk connection would be queued into it: nginx drops the connection, and
# a big result is read on it again.  Small TCP buffers in a network
# namespace of its own, as t/49-half-written (root and iproute2's ip
# needed, else skipped).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use BlackholeProxy;
use OffloadTest;
use SmallBuffers;

in_small_buffers('t49e');

start_redis(args => [ '--rename-command', 'EXEC', '' ]);
# nginx reaches Redis through a proxy that reads nothing more from it once
# it has passed on the job's EXISTS, until released: the first slice is
# left half written when the deadline comes
my $proxy = BlackholeProxy->start(redis_port(), hold_on =>
    qr/\r\nEXISTS\r\n\$\d+\r\noffload:\{parked\}:jobs\r\n/);
END { kill 'KILL', $proxy->pid if $proxy }
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
start_jobs_nginx(workers => 1, redis => '127.0.0.1:' . $proxy->port,
    server => <<'CONF')
    client_max_body_size 16m;
    location ~ ^/brief/([^/]+)$ { offload_pass $1; offload_timeout 400ms; }
CONF
    or give_up('stack did not start');
is(redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a queue nobody reads');

my $s = send_post('/brief/parked', '"' . ('p' x (2 << 20)) . '"');
my $a = read_answer($s, scaled(10));
is($a->{status}, 504, 'the deadline passed with the body half written: 504');
$proxy->release;

my $dropped = qr/bulk connection: EXEC refused with its MULTI open/;
ok(wait_until(sub { slurp(nginx_error_log()) =~ $dropped }, scaled(10),
    'bulk connection dropped'), 'the blank copy\'s EXEC, refused, dropped '
    . 'the bulk connection');

# a result over 1 MB is read on the bulk connection (LLEN, LINDEX)
my $one = '"' . ('r' x (1048576 - 2)) . '"';
my $r;
ok(wait_until(sub {
    $r = http('POST', '/jobs/echo', $one);
    ($r->{status} // 0) == 200;
}, scaled(10), 'big result read'), 'then a big result is read on it: 200 ('
    . ($r->{status} // '?') . ')');
ok(($r->{content} // '') eq $one, '... whole');

finish();
