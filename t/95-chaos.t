#!/usr/bin/perl
# The chaos soak (bench/chaos) for 30 s: workers killed every second, Redis
# restarted halfway, 5% of jobs crashing their worker, 5% retried after a
# failure for now, 15% async with an Idempotency-Key (one in five sent
# twice).  Its ledger must show every accepted job answered once, nothing
# lost, nginx untouched (a job answered 503 outcome_unknown in the restart
# is counted apart: its client was told); every accepted async job ended
# (done, failed or dead) within the post-load wait, and every second send
# of a key named the first's job.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $out = `$FindBin::Bin/../bench/chaos --duration 30 --json`;
my $rc = $? >> 8;
my ($line) = grep { /^\{/ } split /\n/, $out;
my $r = json_decode($line // '') || {};

ok($r->{submitted} > 100, "jobs submitted: " . ($r->{submitted} // 0));
ok($r->{accepted} > 0, "jobs accepted: " . ($r->{accepted} // 0));
is($r->{answered}, $r->{submitted}, 'every request answered');
is($r->{lost}, 0, 'no accepted job lost');
is($r->{duplicate_answers}, 0, 'no job answered twice');
is($r->{missing_results}, 0, 'every answered job has its result in redis');
is($r->{wrong_payloads}, 0,
    'every answer is its own request\'s, every async job ended as it should');
ok($r->{retry_ok_200} > 0, "retried jobs answered 200: "
    . ($r->{retry_ok_200} // 0));
ok($r->{async_accepted} > 0, "async jobs accepted: "
    . ($r->{async_accepted} // 0));
is($r->{async_done} + $r->{async_failed} + $r->{async_dead},
    $r->{async_accepted}, 'every accepted async job ended: done, failed, dead');
is($r->{async_not_terminal}, 0, 'no async job left queued or running');
ok($r->{async_resubmits} > 0, "async jobs sent twice: "
    . ($r->{async_resubmits} // 0));
is($r->{async_resubmit_mismatches}, 0,
    'every second send of a key named the first\'s job');
is($r->{nginx_restarted}, 0, 'nginx never restarted');
ok($r->{worker_kills} >= 20, "workers killed: " . ($r->{worker_kills} // 0));
is($r->{redis_restarts}, 1, 'redis restarted once');
is($rc, 0, 'bench/chaos exits 0') or diag($out);
diag(sprintf 'chaos 30 s: %d submitted, %d accepted, %d lost, %d answered '
    . 'outcome_unknown, %d worker restarts, p99 %s ms; async %d accepted, '
    . '%d done, %d failed, %d dead, %d sent twice; %d retried 200',
    map { $_ // 0 } @$r{qw(submitted accepted lost outcome_unknown_503
    worker_restarts p99_ms async_accepted async_done async_failed async_dead
    async_resubmits retry_ok_200)});

done_testing();
