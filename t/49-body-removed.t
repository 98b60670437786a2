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
use IO::Select;
use IO::Socket::INET;
use Test::More;
use BlackholeProxy;
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

my $events = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "events: $!";
syswrite($events, "PSUBSCRIBE __keyspace\@0__:offload:{big}:body:*\r\n"
    . "SUBSCRIBE offload:test:marker\r\n");
my ($buf, $sel) = ('', IO::Select->new($events));
sub events_until {
    my ($re) = @_;
    while ($buf !~ $re && $sel->can_read(scaled(5))) {
        sysread($events, $buf, 65536, length $buf) or last;
    }
}
events_until(qr/subscribe\r\n\$\d+\r\noffload:test:marker/);

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

redis_cmd('PUBLISH', 'offload:test:marker', 'end');
events_until(qr/\$3\r\nend\r\n/);
my @seen = $buf =~ /pmessage\r\n\$\d+\r\n[^\r]*\r\n\$\d+\r\n[^\r]*\r\n
    \$\d+\r\n(\w+)\r\n/gx;
is("@seen", 'rpush expire del',
    'nothing made the key again once removed (its keyspace events)');
is(redis_cmd('EXISTS', $key // 'none') + redis_cmd('XLEN',
    'offload:{big}:jobs'), 0, 'no body key left, no job added');

finish();
