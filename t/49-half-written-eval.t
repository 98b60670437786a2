#!/usr/bin/perl
# A big body's first slice sent by the script (a Redis whose EXEC is
# renamed away, once nginx has switched to it), half written when its
# request goes: nginx finishes the EVAL blank, the body key it makes is
# unlinked behind it, and the bulk connection goes on: later big bodies
# and big results are answered whole.  Small TCP buffers in a network
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

in_small_buffers('t49v');

my $proxy = half_written_stack(redis_args => [ '--rename-command', 'EXEC',
    '' ]);
END { kill 'KILL', $proxy->pid if $proxy }

sub big { '"' . ($_[0] x (2 << 20)) . '"' }

my $r = http('POST', '/jobs/echo', big('a'));
is($r->{status}, 503, 'a big body: 503, Redis refused its EXEC');
ok(wait_until(sub {
    $r = http('POST', '/jobs/echo', big('b'));
    ($r->{status} // 0) == 200;
}, scaled(10), 'big body by the script'),
    'nginx switched: a big body by the script, 200');

my $s = send_post('/brief/parked', big('p'));
my $a = read_answer($s, scaled(10));
is($a->{status}, 504, 'a scripted first slice half written: 504');
$proxy->release;
ok(wait_until(sub {
    !@{ redis_cmd('KEYS', 'offload:{parked}:body:*') };
}, scaled(10), 'body key unlinked'),
    'its EVAL finished blank, the body key it made unlinked behind it');

$r = http('POST', '/jobs/echo', big('c'));
is($r->{status}, 200, 'the next big body: 200');
ok(($r->{content} // '') eq big('c'), '... whole');
my $one = '"' . ('r' x (1048576 - 2)) . '"';
$r = http('POST', '/jobs/echo', $one);
ok(($r->{status} // 0) == 200 && ($r->{content} // '') eq $one,
    'a big result is read on the bulk connection: 200, whole');
unlike(slurp(nginx_error_log()), qr/protocol error|Protocol error/,
    'no protocol error');

finish();
