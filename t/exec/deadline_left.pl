#!/usr/bin/perl
# deadline_left.pl -- an exec handler for t/31-clock-skew.t: answers how
# many ms its job has left by this host's clock (its deadline less now) and
# this host's time, in the framing of docs/HANDLERS.md.

use strict;
use warnings;
use JSON::PP;
use Time::HiRes qw(time);

$| = 1;
my $json = JSON::PP->new->canonical;
while (my $line = <STDIN>) {
    my $req = $json->decode($line);
    my $now = int(time * 1000);
    print $json->encode({ id => $req->{id},
        result => { left_ms => $req->{deadline} - $now, now_ms => $now } }),
        "\n";
}
