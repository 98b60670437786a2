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
use OffloadTest;
use SmallBuffers;
use HalfWritten;

in_small_buffers('t49e');

# the first slice is left half written when the deadline comes, the
# proxy holding what nginx sends
my $proxy = half_written_stack(redis_args => [ '--rename-command', 'EXEC',
    '' ]);
END { kill 'KILL', $proxy->pid if $proxy }

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
