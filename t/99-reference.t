#!/usr/bin/perl
# The reference docs and the man pages against the code: every directive
# of the module's command table and of the sidecar's directive table has a
# section in docs/ngx_http_offload_module.md / docs/sidecar.conf.md and in
# the man page (Syntax, Default, Context as the table says, an example),
# and nothing else does; offloadctl(8) and offload-sidecar(8) have every
# command and option the programs' own help lists (each directive's
# example fenced as nginx or sidecar, which t/12-doc-examples.t runs
# through `nginx -t` and `offload-sidecar -t`); the man pages pass
# `mandoc -Tlint`, render with `man -l` without a warning and give
# `lexgrog` their whatis line.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $dir = tmpdir();

# ---- the code's tables

# nginx's context flags, in the order nginx.org lists them
my @NGX_CTX = ([ MAIN => 'http' ], [ SRV => 'server' ],
    [ LOC => 'location' ], [ SIF => 'if in server' ],
    [ LIF => 'if in location' ], [ UPS => 'upstream' ]);

# name => [contexts], from every ngx_command_t array of ngx_module/*.c
sub module_table {
    my %d;
    for my $file (glob "$root/ngx_module/*.c") {
        my $src = slurp($file);
        while ($src =~ /ngx_command_t \s+ \w+ \[\] \s* = \s* \{
                        (.*?) ngx_null_command/sxg) {
            my $table = $1;
            while ($table =~ /\{ \s* ngx_string\("(\w+)"\) \s* , \s*
                              ([^,]+) ,/sxg) {
                my ($name, $flags) = ($1, $2);
                $d{$name} = [ map { $_->[1] }
                    grep { $flags =~ /\bNGX_HTTP_$_->[0]_CONF\b/ } @NGX_CTX ];
            }
        }
    }
    return \%d;
}

# name => [contexts], from the arrays of the sidecar's conf.c (wherever it
# lives under sidecar/) whose rows are `{ "name", ...`: one table that
# holds "queue" and "workers", a row's context its CTX_MAIN / CTX_QUEUE;
# or a table of main directives (it has "queue") and one of queue
# directives (it has "workers").  Context undef: the row does not say.
sub sidecar_table {
    my @files = split /\n/, `find $root/sidecar -name conf.c`;
    is(scalar @files, 1, 'one conf.c under sidecar/') or diag("@files");
    my %d;
    my $src = slurp($files[0] // '');
    while ($src =~ /\[\w*\] \s* = \s* \{ (.*?) \n\}; /sxg) {
        my $body = $1;
        my %rows;
        while ($body =~ /^ \s* \{ \s* "([a-z_]+)" \s* , ([^\n]*)/mxg) {
            my ($name, $rest) = ($1, $2);
            $rows{$name} = [ map { lc } $rest =~ /\bCTX_(MAIN|QUEUE)\b/g ];
        }
        my $ctx = exists $rows{queue} && exists $rows{workers} ? undef
            : exists $rows{queue} ? 'main'
            : exists $rows{workers} ? 'queue' : next;
        for my $name (keys %rows) {
            my @ctx = $ctx ? ($ctx) : @{ $rows{$name} };
            $d{$name} = @ctx ? \@ctx : undef;
        }
    }
    ok(exists $d{queue} && exists $d{workers},
        'the directive table of the sidecar\'s conf.c');
    return \%d;
}

my $sidecar_bin = build_path('offload-sidecar');
my $module = module_table();
my $sidecar = sidecar_table();
cmp_ok(scalar keys %$module, '>=', 13, 'the module has its directives')
    or diag(explain($module));
cmp_ok(scalar keys %$sidecar, '>=', 28, 'the sidecar has its directives')
    or diag(explain($sidecar));

# ---- the references

# What $re's group matched in $text, or undef (a match in list context
# would give an empty list, which shifts the pairs of a hash it is in).
sub field {
    my ($text, $re) = @_;
    return $text =~ $re ? $1 : undef;
}

# name => { syntax, default, context, example } from a reference's
# "## Directives" section of "### name" subsections; the example is the
# first block fenced as $tag, the ones t/12-doc-examples.t checks
sub reference {
    my ($file, $tag) = @_;
    my $md = slurp($file);
    my ($part) = $md =~ /^\#\# [ ] Directives\n(.*?)(?=^\#\# [ ]|\z)/msx;
    my %d;
    for my $sec (split /^\#\#\# [ ]/mx, $part // '') {
        my ($name) = $sec =~ /\A(\S+)\n/ or next;
        $d{$name} = {
            syntax  => field($sec, qr/^\*\*Syntax:\*\* [ ] `([^`]+)`/mx),
            default => field($sec, qr/^\*\*Default:\*\* [ ] (.+?) \s*$/mx),
            context => field($sec, qr/^\*\*Context:\*\* [ ] (.+?) \s*$/mx),
            example => field($sec, qr/^```\Q$tag\E\n(.*?)^```$/msx),
        };
    }
    return \%d;
}

sub check_reference {
    my ($what, $file, $table, $tag) = @_;
    my $ref = reference("$root/$file", $tag);
    for my $name (sort keys %$table) {
        my $d = $ref->{$name};
        ok($d, "$file documents $what directive $name") or next;
        like($d->{syntax} // '', qr/^\Q$name\E[ ;]/,
            "$file: $name: Syntax starts with its name");
        ok(defined $d->{default}, "$file: $name: Default");
        my $want = $table->{$name};
        if ($want) {
            is(join(', ', map { "`$_`" } @$want), $d->{context} // '',
                "$file: $name: Context as in the table");
        }
        like($d->{example} // '', qr/(?:^|[\s{])\Q$name\E[\s;]/m,
            "$file: $name: an example fenced as $tag that uses it");
    }
    for my $name (sort grep { !exists $table->{$_} } keys %$ref) {
        fail("$file documents $name, which the $what does not know");
    }
}

check_reference('module', 'docs/ngx_http_offload_module.md', $module,
    'nginx');
check_reference('sidecar', 'docs/sidecar.conf.md', $sidecar,
    'sidecar');

my $readme = slurp("$root/README.md");
like($readme, qr{\(docs/ngx_http_offload_module\.md\)},
    'README links the module reference');
like($readme, qr{\(docs/sidecar\.conf\.md\)},
    'README links the sidecar reference');

# README's summary tables: a row per directive, each one that exists
for my $t ([ 'nginx directives', $module ],
           [ 'Sidecar configuration', $sidecar ]) {
    my ($title, $table) = @$t;
    my ($part) = $readme =~ /^\#\# [ ] \Q$title\E\n(.*?)(?=^\#\#)/msx;
    my %rows = map { $_ => 1 } ($part // '') =~ /^\| [ ] `(\w+)[ `;]/mgx;
    ok($rows{$_}, "README's $title table has $_") for sort keys %$table;
    fail("README's $title table has $_, which does not exist")
        for sort grep { !exists $table->{$_} } keys %rows;
}

# ---- the man pages

my %man = map { $_ => "$root/docs/man/$_" } qw(offload-sidecar.8
    offloadctl.8 offload-sidecar.conf.5 ngx_http_offload_module.8);

for my $page (sort keys %man) {
    my $file = $man{$page};
    ok(-f $file, "docs/man/$page exists") or next;

    my $lint = `mandoc -Tlint -W all $file 2>&1`;
    is($? >> 8, 0, "mandoc -Tlint $page exits 0");
    is($lint, '', "mandoc -Tlint $page says nothing");

    # man-db's own path: preconv, tbl, groff with warnings on
    my $out = `MANWIDTH=80 man --warnings -E UTF-8 -l $file 2>$dir/man.err`;
    is($? >> 8, 0, "man -l $page exits 0");
    is(slurp("$dir/man.err"), '', "man -l $page renders without warnings");
    (my $name = $page) =~ s/\.\d$//;
    like($out, qr/^NAME\n\s+\Q$name\E\s+-\s+\S/m, "man -l $page: NAME");

    my $whatis = `lexgrog $file 2>&1`;
    is($? >> 8, 0, "lexgrog $page exits 0");
    like($whatis, qr/: "\Q$name\E - .+"$/m, "lexgrog $page: whatis line")
        or diag($whatis);
}

# The directive pages: a ".SS name" under DIRECTIVES, with its Context.
sub man_directives {
    my ($file) = @_;
    my ($part) = slurp($file) =~ /^\.SH DIRECTIVES\n(.*?)(?=^\.SH |\z)/ms;
    my %d;
    for my $sec (split /^\.SS /m, $part // '') {
        my ($name) = $sec =~ /\A(\S+)\n/ or next;
        my ($ctx) = $sec =~ /^Context: (.*)$/m;
        $d{$name} = $ctx;
    }
    return \%d;
}

for my $m ([ 'ngx_http_offload_module.8', $module, 'module' ],
           [ 'offload-sidecar.conf.5', $sidecar, 'sidecar' ]) {
    my ($page, $table, $what) = @$m;
    my $doc = man_directives($man{$page});
    for my $name (sort keys %$table) {
        ok(exists $doc->{$name}, "$page documents $name") or next;
        is($doc->{$name}, join(', ', @{ $table->{$name} }),
            "$page: $name: Context as in the table") if $table->{$name};
    }
    fail("$page documents $_, which the $what does not know")
        for sort grep { !exists $table->{$_} } keys %$doc;
}

# offloadctl(8): every command `offloadctl --help` lists, and no other
{
    my $ctl = build_path('offloadctl');
    my ($list) = `$ctl --help` =~ /^commands:\n(.*?)\n\n/ms;
    my %cmds = map { $_ => 1 } ($list // '') =~ /^  (\w+)/mg;
    my ($part) = slurp($man{'offloadctl.8'})
        =~ /^\.SH COMMANDS\n(.*?)(?=^\.SH )/ms;
    my %doc = map { $_ => 1 } ($part // '') =~ /^\.TP\n\.B (\w+)/mg;
    cmp_ok(scalar keys %cmds, '>=', 13, 'offloadctl --help lists commands');
    ok($doc{$_}, "offloadctl.8 documents $_") for sort keys %cmds;
    fail("offloadctl.8 documents $_, which offloadctl does not know")
        for sort grep { !$cmds{$_} } keys %doc;
}

# offload-sidecar(8): every option `offload-sidecar -h` lists
{
    my @opts = `$sidecar_bin -h` =~ /^  -(\w)\b/mg;
    cmp_ok(scalar @opts, '>=', 3, 'offload-sidecar -h lists options');
    # (before: "invalid option -- '-'")
    like(`$sidecar_bin --help 2>&1`, qr/^usage: offload-sidecar/,
        'offload-sidecar --help: the same usage');
    is($? >> 8, 0, '... exit 0');
    my $page = slurp($man{'offload-sidecar.8'});
    like($page, qr/^\.(?:TP\n\.)?BI? \\-$_\b/m,
        "offload-sidecar.8 documents -$_") for @opts;
}

done_testing();
