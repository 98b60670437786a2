#!/usr/bin/perl
# GETs of a big async result that are not read: each held the whole result
# in the nginx worker's memory until its client read it, so one upload was
# held over and over by cheap idle connections (30 GETs of a 20 MB result:
# +515 MB).  Past offload_jobs_memory in a worker, a big result's read
# waits: 503 busy with Retry-After, at once, and nothing is read from
# Redis for it; once the idle readers go, GETs answer again.  A small
# result is read as before.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use OffloadTest;
use RedisMonitor;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
start_nginx(workers => 1, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    client_max_body_size 64m;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ { offload_jobs; offload_jobs_memory 20m; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}', 1), 'stack ready');

sub done_job {
    my ($body) = @_;
    my $id = (http('POST', '/async/echo', $body)->{json} // {})->{id} // '';
    wait_until(sub {
        (redis_cmd('HGET', record_key($id), 'status') // '') eq 'done'
    }, scaled(30), "job $id done");
    return $id;
}

my $payload = '{"data":"' . ('x' x (8 << 20)) . '"}';
my $big = done_job($payload);
is(redis_cmd('TYPE', "offload:{echo}:result:$big"), 'list',
    'an 8 MB result: a list');
my $small = done_job('{"small":1}');

# A GET whose client reads its status line, then nothing: its answer stays
# in nginx.
sub idle_reader {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    print $s "GET /jobs/$big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    my $line = '';
    wait_until(sub { sysread($s, $line, 12, length $line); length $line >= 12 },
        scaled(20), 'status line');
    return ($s, $line);
}

my @idle;
for my $i (1 .. 2) {
    my ($s, $line) = idle_reader();
    is($line, 'HTTP/1.1 200', "idle reader $i: its answer begins, 200");
    push @idle, $s;
}

my $mon = RedisMonitor->start;
my $r = http('GET', "/jobs/$big");
is($r->{status}, 503, 'a third GET of the big result: 503');
ok(!$mon->wait_for(sub { uc($_[0][1] // '') eq 'LINDEX' }, scaled(0.5)),
    'nothing of it read from Redis (the refusal read it all the same)');
is($r->{json} && $r->{json}{error}{code}, 'busy', 'busy')
    or diag($r->{content});
is($r->{headers}{'retry-after'}, 1, 'with Retry-After: 1');
ok($r->{ms} < 1000, sprintf('at once (%.0f ms)', $r->{ms}));
like(slurp(nginx_error_log()),
    qr/a big result's read waits: .*offload_jobs_memory 20971520/,
    'the error log says why');
is(http('GET', "/jobs/$small")->{status}, 200, 'a small result: 200');

close $_ for @idle;
ok(wait_until(sub { http('GET', "/jobs/$big")->{status} == 200 },
    scaled(10), 'big GET again'),
    'once the idle readers are gone, the big result answers 200');

finish();
