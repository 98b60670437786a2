#!/usr/bin/perl
# A big body is read at most 1 MB a turn of nginx's event loop
# (ngx_http_offload_pace.c), over plain HTTP/1.1 and TLS, with a length and
# chunked: nginx's debug log shows every recv of the body, none over
# 1048576 bytes, and the body arrives whole (an echo job's answer is the
# body).  Without the pace one recv took what the socket held, megabytes,
# while every other request of the worker waited.  A client that leaves a
# paced body halfway leaves the worker serving its next requests.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use OffloadTest;

my $dir = tmpdir();
tls_cert();

my $tls = free_port();
start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
CONF
start_nginx(workers => 1, level => 'debug', http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    listen 127.0.0.1:$tls ssl;
    ssl_certificate \@DIR\@/cert.pem;
    ssl_certificate_key \@DIR\@/key.pem;
    offload_redis \@REDIS\@;
    client_max_body_size 40m;
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location = /ceiling { return 200 "ok"; }
}
HTTP
ok(wait_nginx_ready('/jobs/echo', '{}', 1), 'stack ready');

my $mb = 24;
my $file = "$dir/big.json";
spew($file, '{"data":"' . ('x' x ($mb * 2**20 - 11)) . '"}');
my $log = nginx_error_log();

# the body recv sizes nginx logged since offset $from of its error log
sub body_recvs {
    my ($from) = @_;
    my $text = substr(slurp($log), $from);
    return map { /http client request body recv (\d+)/ ? $1 : () }
        split /\n/, $text;
}

for my $case (
    [ 'HTTP/1.1, Content-Length', "http://127.0.0.1:" . nginx_port(), '' ],
    [ 'HTTP/1.1, chunked', "http://127.0.0.1:" . nginx_port(),
      "-H 'Transfer-Encoding: chunked'" ],
    [ 'TLS, Content-Length', "https://127.0.0.1:$tls", '' ])
{
    my ($name, $base, $more) = @$case;
    my $from = -s $log;
    my $out = `curl -vsk --http1.1 -o $dir/answer -w '%{http_code}' \\
        -H 'Expect:' -H 'Content-Type: application/json' $more \\
        --data-binary \@$file $base/jobs/echo 2>$dir/curl.err`;
    is($out, '200', "$name: the $mb MB echo job answered 200")
        or diag(slurp("$dir/curl.err"));
    is(-s "$dir/answer", -s $file, "$name: with the whole body");
    my @recvs = body_recvs($from);
    my ($max) = sort { $b <=> $a } @recvs;
    cmp_ok($max // 0, '<=', 1048576,
        "$name: no recv of the body over 1 MB (the largest $max bytes)");
    cmp_ok(scalar @recvs, '>=', $mb,
        "$name: the body read in at least $mb recvs (" . @recvs . ')');
    my $turns = () = substr(slurp($log), $from) =~ /posted next event/g;
    cmp_ok($turns, '>=', $mb / 2, "$name: over turns of the loop, the "
        . "read event posted for the next one ($turns times)");
}

# a client that sends half a paced body and goes: its request ends, the
# connection's recv is given back, and the worker goes on
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
my $len = 8 * 2**20;
my $from = -s $log;
my $half = "POST /jobs/echo HTTP/1.1\r\nHost: t\r\n"
    . "Content-Type: application/json\r\nContent-Length: $len\r\n\r\n"
    . '{"data":"' . ('x' x ($len / 2));
while (length $half) {
    my $n = syswrite($s, $half) // die "write: $!\n";
    substr($half, 0, $n, '');
}
ok(wait_until(sub { body_recvs($from) >= 2 }, scaled(10),
    'the half body being read'), 'half a body read, paced');
close $s;
ok(wait_until(sub { slurp($log) =~ /client prematurely closed connection/ },
    scaled(10), 'the client gone'), 'the request ends when its client goes');
is(http('GET', '/ceiling')->{status}, 200, 'the worker serves on');
my $r = post_json('/jobs/echo', '{"after":1}');
is($r->{status}, 200, 'and its jobs');

finish();
