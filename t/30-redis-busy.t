#!/usr/bin/perl
# A Redis busy with a script that runs too long answers BUSY to every
# command: the sidecar's reads and claims and nginx's registry reads are
# refused at every try until it ends.  The log says so when the refusals
# begin and when they end, once per reader, not a line a try.  (Before:
# each worker logged "XREADGROUP failed: BUSY" every second, the
# supervisor "XAUTOCLAIM failed" every claim round, each nginx worker
# "registry read for admission: BUSY" every second.)  Jobs run again once
# the script is killed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use OffloadTest;

start_redis();
start_sidecar(conf => "claim_idle 400ms;\n"
    . "queue echo { handler echo; workers 2; }\n");
ok(start_jobs_nginx(level => 'info'), 'the stack is up: a job is answered');
my $slog = tmpdir() . '/sidecar.log';
my $nlog = nginx_error_log();

sub count { my ($file, $re) = @_; my $text = slurp($file); () = $text =~ /$re/g }

sub busy_errors {
    my ($n) = (redis_cmd('INFO', 'errorstats') // '')
        =~ /errorstat_BUSY:count=(\d+)/;
    return $n // 0;
}

# BUSY after 100 ms of a script instead of 5 s; a script that loops until
# killed, sent on a connection of its own
is(redis_cmd('CONFIG', 'SET', 'lua-time-limit', '100'), 'OK',
    'Redis answers BUSY 100 ms into a script');
my $script = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "connect: $!";
my $loop = 'while true do end';
print $script "*3\r\n\$4\r\nEVAL\r\n\$" . length($loop) . "\r\n$loop\r\n"
    . "\$1\r\n0\r\n";

# Redis answers nothing else meanwhile (INFO neither): the refusals
# begun, seen in the logs, each reader (a worker's read, nginx's registry
# read: once a second) is let try a few times more before the kill, and
# Redis' count of BUSY answers after it says they did
ok(wait_until(sub {
    count($slog, qr/refuses the read \(XREADGROUP\): BUSY/) >= 2
        && count($nlog, qr/registry read for admission: BUSY/) >= 1
}, scaled(20), 'refusals logged'), 'the refusals are logged')
    or diag(slurp($slog));
sleep 3;
my $killer = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp') or die "connect: $!";
print $killer "*2\r\n\$6\r\nSCRIPT\r\n\$4\r\nKILL\r\n";
ok(wait_until(sub {
    count($slog, qr/redis takes the read \(XREADGROUP\) again/) >= 2
}, scaled(15), 'reads taken again'), 'both workers read again')
    or diag(slurp($slog));

cmp_ok(busy_errors(), '>=', 12, 'Redis refused the readers again and '
    . 'again (' . busy_errors() . ' BUSY answers)');
is(count($slog, qr/redis refuses the read \(XREADGROUP\): BUSY/), 2,
    'one line a worker when its reads are refused');
cmp_ok(count($slog, qr/refuses the claim \(XAUTOCLAIM\): BUSY/), '<=', 1,
    'at most one for the claims');
is(count($slog, qr/XREADGROUP failed|XAUTOCLAIM failed/), 0,
    'no line a try');
cmp_ok(count($nlog, qr/registry read for admission: BUSY/), '<=', 2,
    'nginx: at most one line a worker');
ok(wait_nginx_ready('/jobs/echo', '{}'), 'jobs run again');
is(redis_cmd('CONFIG', 'SET', 'lua-time-limit', '5000'), 'OK',
    'lua-time-limit back');

finish();
