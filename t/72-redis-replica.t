#!/usr/bin/perl
# The Redis at the sidecar's address turns replica (REPLICAOF: a failover
# behind a plain address, an operator's mistake): every write is refused
# READONLY.  Each sidecar link reconnects at its backoff's pace (up to
# 2 s), not at once: the answers Redis gives to keyless commands (SCRIPT
# LOAD) no longer count as the link working.  (Before: each worker
# reconnected every ~80 ms, five log lines a cycle, for as long as Redis
# stayed a replica.)  Once it is a master again, jobs run within the cap.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use OffloadTest;

my $WINDOW = 3;         # seconds the reconnects are counted over
my $CAP = 2.5;          # the longest backoff (2 s + 25 %)

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 2; }\n");
ok(start_jobs_nginx(), 'stack ready');
my $log = tmpdir() . '/sidecar.log';

# The sidecar's links that connected, by name, in the log so far.
sub connects {
    my %n;
    my $text = slurp($log);
    $n{$1}++ while $text =~ /\] \d+ (.+?): connected to redis/g;
    return \%n;
}

is(redis_cmd('REPLICAOF', '127.0.0.1', free_port()), 'OK',
    'Redis turns replica of a master that is not there');
ok(wait_until(sub { slurp($log) =~ /redis is a replica now \(READONLY\)/ },
    scaled(10), 'READONLY seen'), 'the sidecar sees the refusal');

# once the backoff grew (a second after the first refusal)
sleep 1;
my $before = connects();
sleep $WINDOW;
my $after = connects();
my @links = sort keys %$after;
ok(@links >= 3, 'the workers and the supervisor connect: ' . "@links");
for my $link (@links) {
    my $n = $after->{$link} - ($before->{$link} // 0);
    cmp_ok($n, '<=', 3, "$link: $n connects in $WINDOW s, at the "
        . "backoff's pace");
}

my $t0 = time;
is(redis_cmd('REPLICAOF', 'NO', 'ONE'), 'OK', 'Redis is a master again');
ok(wait_until(sub { post_json('/jobs/echo', '{"back":1}')->{status} == 200 },
    scaled($CAP + 5), 'a job runs'), 'jobs run again');
my $took = time - $t0;
diag(sprintf 'master again: a job ran after %.2f s', $took);
cmp_ok($took, '<', scaled($CAP + 2), 'within the backoff\'s cap');

finish();
