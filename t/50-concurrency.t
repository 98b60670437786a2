#!/usr/bin/perl
# 2,000 echo jobs over 200 keep-alive connections at once: every answer is
# 200 and carries its own request's body back.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; prefetch 16; }
CONF
ok(start_jobs_nginx(), 'stack ready');

my ($conns, $per) = (200, 10);
my $t0 = time;
my @res = concurrent_posts($conns, $per, sub {
    my ($c, $j) = @_;
    my $n = $c * $per + $j;
    return json_encode({ n => $n, pad => 'p' x (($n * 7919) % 3000) });
});
my $dt = time - $t0;
diag(sprintf '%d jobs over %d connections in %.2f s (%.0f jobs/s)',
    scalar @res, $conns, $dt, @res / ($dt || 1));

is(scalar @res, $conns * $per, 'one answer per job');
my @bad = grep { $_->{status} != 200 } @res;
is(scalar @bad, 0, 'every answer is 200')
    or diag(explain [ map { "$_->{status} " . ($_->{error} // $_->{content}) }
        @bad[0 .. ($#bad < 5 ? $#bad : 5)] ]);
my @wrong = grep { $_->{status} == 200 && !is_same($_) } @res;
is(scalar @wrong, 0, 'every answer carries its own body')
    or diag(explain $wrong[0]);
my %ids = map { ($_->{headers}{'x-offload-job-id'} // '') => 1 } @res;
is(scalar keys %ids, $conns * $per, 'all job ids distinct');

sub is_same {
    my ($r) = @_;
    my $got = json_decode($r->{content});
    my $want = json_decode($r->{body});
    return $got && ref $got eq 'HASH' && $got->{n} == $want->{n}
        && $got->{pad} eq $want->{pad};
}

finish();
