#!/usr/bin/perl
# nginx out of worker_connections (clients hold every one) when a Redis
# link of the module must connect again: the module says which link
# could not, and why, in its own words (nginx's alert names neither
# offload nor Redis).  Once the clients go, the link connects again and
# jobs run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use OffloadTest;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
start_nginx(workers => 1, connections => 32, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
}
HTTP
ok(wait_nginx_ready('/jobs/echo', '{}', 1), 'stack ready');
my $log = nginx_error_log();

# clients take every connection nginx has left (each sent half a head)
my @flood;
for (1 .. 40) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or last;
    print $s "GET / HTTP/1.1\r\n";
    push @flood, $s;
}
ok(wait_until(sub { slurp($log) =~ /worker_connections are not enough/ },
    scaled(10), 'connections exhausted'), 'nginx has no connection left');

# the subscriber dropped: it must connect again, and cannot, a client
# taking every connection freed (one more every 5 ms)
my $flooder = fork // die "fork: $!";
if (!$flooder) {
    my @held;
    for (1 .. 2000) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => nginx_port(), Proto => 'tcp');
        if ($s) { print $s "GET / HTTP/1.1\r\n"; push @held, $s }
        select(undef, undef, undef, 0.005);
    }
    POSIX::_exit(0);
}
redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
my $said = qr/offload: redis \S+ subscriber connection failed: no free /
    . qr/connection of nginx's worker_connections/;
ok(wait_until(sub { slurp($log) =~ $said }, scaled(10), 'said'),
    'the module says which link cannot connect, and why');

kill 'KILL', $flooder;
waitpid $flooder, 0;
close $_ for @flood;
ok(wait_nginx_ready('/jobs/echo', '{}', 1), 'once the clients go, jobs run');

# nginx's own alerts for the flood were the point: not a fault to report
my $text = slurp($log);
$text =~ s/^.*worker_connections are not enough.*\n//mg;
spew($log, $text);

finish();
