#!/usr/bin/perl
# A log target that refuses lines (a full disk: here /dev/full, ENOSPC at
# every write) loses them, and the sidecar serves on; the first line the
# target takes again is the count of those lost and why, so a gap in the
# log is never silent.  (Before: the lines went nowhere, and nothing said
# so anywhere.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $log = "$dir/sidecar.log";

start_redis();
symlink('/dev/full', $log) or die "symlink: $!";
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(), 'the stack serves with its log on a full disk');
is(post_json('/jobs/echo', '{"n":1}')->{status}, 200, 'a job is answered');

# the disk has room again: logrotate's SIGUSR1 opens the file anew
unlink($log) or die "unlink: $!";
spew($log, '');
kill 'USR1', sidecar_pid();
ok(wait_until(sub { slurp($log) =~ /log reopened/ }, scaled(10),
    'reopened'), 'the log is written again');
my $lost = qr/\[warn\] \d+ \d+ log lines? lost: No space left on device\n/;
like(slurp($log), qr/$lost.*log reopened/,
    'its first line says how many were lost, and why');

finish();
