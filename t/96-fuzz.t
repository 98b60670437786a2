#!/usr/bin/perl
# The libFuzzer harnesses of t/fuzz/ (built by `make test` into
# $OFFLOAD_BUILD/fuzz): each runs once over every seed and regression input
# (t/fuzz/corpus/<name>, t/fuzz/regress/<name>: inputs that once found a
# bug), then fuzzes for a few seconds (two harnesses at a time).  Any
# crash, sanitizer report, leak or broken property fails the test.
# `make fuzz` runs them for longer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use OffloadTest;

my $src = "$FindBin::Bin/fuzz";
my $seconds = $ENV{OFFLOAD_FUZZ_SECONDS} || 3;
my @names = map { m{/([^/]+)\.c$} } glob("$src/*.c");
ok(@names >= 5, 'harnesses: ' . join(' ', @names));

my $dir = tmpdir();
my @fuzz;

for my $name (@names) {
    my $bin = build_path("fuzz/$name");
    ok(-x $bin, "$name: built") or next;

    my @inputs = grep { -f } glob("$src/corpus/$name/* $src/regress/$name/*");
    ok(@inputs > 0, "$name: " . @inputs . ' seed and regression inputs');

    # Each input once, by name: the harness runs exactly these.
    my $out = `$bin -timeout=10 -artifact_prefix=$dir/$name- @inputs 2>&1`;
    my $ran = () = $out =~ /^Executed /mg;
    is($? >> 8, 0, "$name: every input runs clean") or diag(tail($out));
    is($ran, scalar @inputs, "$name: ran $ran of them");

    # A short fuzz run; new inputs go to a scratch corpus, not to t/fuzz.
    my $corpus = "$dir/corpus-$name";
    mkdir $corpus or die "mkdir $corpus: $!";
    my @regress = -d "$src/regress/$name" ? ("$src/regress/$name") : ();
    my @dict = -f "$src/$name.dict" ? ("-dict=$src/$name.dict") : ();
    push @fuzz, [ $name, scalar @inputs, $bin, "-max_total_time=$seconds",
        '-timeout=10', '-print_final_stats=1', @dict,
        "-artifact_prefix=$dir/$name-", $corpus, "$src/corpus/$name",
        @regress ];
}

# The fuzz runs two at a time, one a core: each has its $seconds of a
# core as it would alone, in half the time.
while (my @now = splice @fuzz, 0, 2) {
    my %pid;
    for my $run (@now) {
        my ($name, undef, @cmd) = @$run;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>', "$dir/$name.fuzz.log" or POSIX::_exit(127);
            open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
            exec @cmd or POSIX::_exit(127);
        }
        $pid{$name} = $pid;
    }
    for my $run (@now) {
        my ($name, $inputs) = @$run;
        waitpid($pid{$name}, 0);
        my $rc = $? >> 8;
        my $out = slurp("$dir/$name.fuzz.log");
        my ($execs) = $out =~ /^stat::number_of_executed_units:\s*(\d+)/m;
        is($rc, 0, "$name: $seconds s of fuzzing, no finding")
            or diag(tail($out));
        ok(($execs // 0) > $inputs,
            "$name: " . ($execs // 0) . ' executions');
        my @found = glob("$dir/$name-*");
        is_deeply(\@found, [], "$name: no crash, leak or timeout input");
    }
}

sub tail {
    my @lines = split /\n/, $_[0];
    return join "\n", @lines[($#lines > 40 ? $#lines - 40 : 0) .. $#lines];
}

done_testing();
