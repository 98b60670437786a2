package Valgrind;

# Valgrind -- what the tests that run the stack under valgrind share
# (t/90-valgrind.t on plain Redis, t/90-valgrind-cluster.t on a cluster):
#
#   skip_unless_valgrind()     # skip_all under the sanitizers (ASan, not
#                              # valgrind) or without valgrind installed
#   first_records($log_text)   # the first error or leak record of a
#                              # valgrind log, for a diag

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use OffloadTest;

our @EXPORT = qw(skip_unless_valgrind first_records);

sub skip_unless_valgrind {
    plan skip_all => 'the sanitizer build runs under ASan, not valgrind'
        if sanitize();
    plan skip_all => 'valgrind not installed'
        unless grep { -x "$_/valgrind" } split /:/, $ENV{PATH};
}

# The first error or leak record of a valgrind log: its first line and
# the 12 after it.
sub first_records {
    my ($text) = @_;
    my @lines = split /\n/, $text;
    my ($from) = grep {
        $lines[$_] =~ /(Invalid|uninitialised|definitely lost in)/
    } 0 .. $#lines;
    return 'no record found' unless defined $from;
    my $to = $from + 12 > $#lines ? $#lines : $from + 12;
    return join "\n", @lines[$from .. $to];
}

1;
