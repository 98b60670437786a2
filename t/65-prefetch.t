#!/usr/bin/perl
# prefetch: a worker that takes several jobs in one read answers each as
# soon as it is done, not when the whole batch is.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $ms = 400;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 1; prefetch 4; }
CONF
ok(start_jobs_nginx(
    server => 'offload_timeout 30s;',
    ready => [ '/jobs/sleep', '{"ms":0}' ]), 'stack ready');

# Four jobs at once for one worker: it reads the first alone or all four,
# then the rest in one batch.  Run one after the other, they end ~$ms apart.
my @r = sort { $a->{at} <=> $b->{at} }
    concurrent_posts(4, 1, sub { qq({"ms":$ms}) }, path => '/jobs/sleep');

is(scalar(grep { $_->{status} == 200 } @r), 4, 'all four answered 200')
    or diag(explain([ map { "$_->{status} $_->{content}" } @r ]));

my $spread = $r[3]{at} - $r[1]{at};
diag(sprintf 'answers at +%.2f +%.2f +%.2f s after the first',
    map { $r[$_]{at} - $r[0]{at} } 1 .. 3);
cmp_ok($spread, '>', $ms / 1000,
    'the second answer left well before the last: not held for the batch');

finish();
