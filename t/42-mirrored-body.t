#!/usr/bin/perl
# A waiting request frees its body once Redis has the job (t/42-held-body)
# only when nothing else holds the request: a mirror's subrequest may
# still be sending the same buffers to its upstream.  Here the mirror's
# upstream takes the body slowly (a small receive buffer, read only after
# the job was answered), and must get every byte of it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use OffloadTest;

my $size = 8388608;

my $mirror = IO::Socket::INET->new(Listen => 8, LocalAddr => '127.0.0.1',
    LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
    or die "listen: $!\n";
# set before the connection comes: an accepted socket inherits it, and a
# connection not accepted yet takes no more than it either
setsockopt($mirror, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
my $mport = $mirror->sockport;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(workers => 1, server => <<"CONF"), 'stack ready');
    client_max_body_size 16m;
    client_body_buffer_size 16m;
    location = /mirrored {
        mirror /shadow;
        offload_pass echo;
    }
    location = /shadow {
        internal;
        proxy_pass http://127.0.0.1:$mport;
    }
CONF

my $body = '{"p":"' . join('', map { sprintf '%07d,', $_ } 1 .. $size / 8)
    . '"}';
my $a = post_json('/mirrored', $body, scaled(20));
is($a->{status}, 200, 'the job answered while its mirror is still sending');
is($a->{content}, $body, 'with its own body');

# now read what the mirror sent: its headers, then Content-Length bytes
my $c = $mirror->accept or die "accept: $!\n";
$c->blocking(0);
my ($got, $want, $buf) = ('', undef, '');
wait_until(sub {
    my $n;
    $got .= $buf while $n = sysread($c, $buf, 65536);
    return 1 if defined $n && $n == 0;
    if (!defined $want && $got =~ /\r\n\r\n/) {
        ($want) = $got =~ /^Content-Length:\s*(\d+)/mi;
        $got =~ s/\A.*?\r\n\r\n//s;
    }
    defined $want && length $got >= $want;
}, scaled(20), 'the mirror\'s request');
is($want, length $body, 'the mirror\'s request says the body\'s length');
ok($got eq $body, 'and carries every byte of it (' . length($got)
    . ' bytes)');
print $c "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
close $c;

is(post_json('/jobs/echo', '{"after":1}')->{status}, 200,
    'the nginx worker goes on');

done_testing();
