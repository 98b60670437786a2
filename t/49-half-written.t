#!/usr/bin/perl
# A slice of a big body half written when its request goes (here: its
# deadline, with Redis reading nothing more from nginx) is finished blank:
# spaces for the rest of its data, its tail as it was, and the PEXPIRE and
# EXEC of the first slice's MULTI with it.  Redis reads whole commands,
# the body key is unlinked after them, no XADD is made, the bulk
# connection stays up and the next big body goes through.  On loopback the
# socket buffers grow to megabytes, room enough for the two slices a
# request has on their way, so the file runs itself in a network namespace
# of its own with small TCP buffers (root and iproute2's ip needed, else
# skipped).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use SmallBuffers;
use HalfWritten;
use RedisMonitor;

in_small_buffers('t49');

my $SLICE = 262144;

my $proxy = half_written_stack(
    server => "    location = /status { offload_status; }\n");
END { kill 'KILL', $proxy->pid if $proxy }

sub reconnects {
    return (http('GET', '/status')->{content} // '')
        =~ /"redis_reconnects":(\d+)/ ? $1 : undef;
}

my $before = reconnects();
ok(defined $before, 'offload_status shows the redis reconnects');
my $mon = RedisMonitor->start;

# From the job's EXISTS on, Redis gets nothing more from nginx: the slices
# nginx sends fill the small buffers, and the one being written when the
# deadline comes is left half written.  Not Redis stopped (kill -STOP) as
# soon as MONITOR shows the EXISTS: on a loaded machine Redis ran on for
# milliseconds, read a whole slice, and stopped before it answered its
# EXEC; then nginx had handed both slices on their way whole to the
# socket and the next waited for that answer: none was half written.  The
# proxy holds nginx's bytes from the EXISTS on, before any slice is sent.
my $body = '{"d":"' . join('', map { sprintf '%07d,', $_ } 1 .. 2**19)
    . '"}';
my $s = send_post('/brief/parked', $body);
my $exists = $mon->wait_for(sub { $_[0][1] eq 'EXISTS'
    && $_[0][2] eq 'offload:{parked}:jobs' }, scaled(20));
my $a = read_answer($s, scaled(10));
$mon->catch_up(scaled(10));
my @early = grep { ($_->[2] // '') =~ /^offload:\{parked\}:body:/ }
    @{ $mon->seen };
$proxy->release;
ok($exists, 'the job\'s EXISTS ran');
is_deeply([ map { $_->[1] } @early ], [],
    '... and none of its body reached Redis before the deadline');
is($a->{status}, 504, 'the deadline passed: 504');

my $del = $mon->wait_for(sub { $_[0][1] eq 'UNLINK'
    && $_[0][2] =~ /^offload:\{parked\}:body:/ }, scaled(10));
ok($del, 'its body key is unlinked');
my $key = $del ? $del->[2] : '?';
my @on_key = $mon->on_key($key);
is(($on_key[-1] // [])->[0], 'UNLINK', 'after everything else on it');
my @slices = grep { $_->[0] =~ /^RPUSHX?$/ } @on_key;

# the blank one: the start of its slice, then spaces, as long as the slice
my @blank = grep { $_->[2] =~ / \z/ } @slices;
is(scalar @blank, 1, 'one slice was finished blank');
my $i = $blank[0] ? (grep { $slices[$_] == $blank[0] } 0 .. $#slices)[0] : 0;
# the slices before it went whole (how many: as far as nginx handed them
# to the socket and hiredis' buffer, none here when its first write
# filled the socket), the next, not begun, was simply withdrawn
ok(@blank == 1 && $i == $#slices
    && !grep({ $slices[$_][2] ne substr($body, $_ * $SLICE, $SLICE) }
        0 .. $i - 1),
    'after the whole slices on their way ('
    . join(' ', map { $_->[0] } @on_key) . '), and no more');
my ($data, $spaces) = (($blank[0] // [])->[2] // '') =~ /\A([^ ]*)( +)\z/
    ? ($1, $2) : ('', '');
ok(length($data) + length($spaces) == $SLICE
    && $data eq substr($body, $i * $SLICE, length $data),
    'the blank slice: its data as far as it was written, then spaces ('
    . length($spaces) . ')');
# the first slice's transaction closed whatever slice was cut: MULTI,
# RPUSH, PEXPIRE <ms>, EXEC
my @seen = @{ $mon->seen };
my ($at) = grep { $seen[$_][1] eq 'RPUSH' && $seen[$_][2] eq $key }
    0 .. $#seen;
ok(defined $at && "@{[ map { $seen[$_][1] } $at .. $at + 2 ]}"
    eq 'RPUSH PEXPIRE EXEC' && $seen[$at + 1][3] =~ /^\d+\z/,
    'the first slice\'s PEXPIRE <ms> and EXEC ran');
is(redis_cmd('EXISTS', $key), 0, 'no body key left');
is_deeply([ grep { $_->[1] eq 'XADD' } @{ $mon->seen } ], [], 'no XADD');
is(reconnects(), $before, 'no Redis connection was dropped');
unlike(slurp(nginx_error_log()), qr/withdrawn half sent|connection lost/,
    'nginx did not drop the bulk connection');

# the next big body goes through the same connection, whole
$s = send_post('/jobs/parked', $body);
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{parked}:jobs') == 1 },
    scaled(20), 'next job XADDed'), 'the next big job is XADDed');
my $id = (stream_entries('offload:{parked}:jobs')->[0] // {})->{id} // '';
my $list = redis_cmd('LRANGE', "offload:{parked}:body:$id", 0, -1);
ok(ref $list eq 'ARRAY' && join('', @$list) eq $body,
    'with its body whole in its key');
close $s;

finish();
