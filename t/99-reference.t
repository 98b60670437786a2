#!/usr/bin/perl
# The reference docs and the man pages against the code: every directive
# of the module's command table and of the sidecar's directive table has a
# section in docs/ngx_http_offload_module.md / docs/sidecar.conf.md and in
# the man page (Syntax, Default, Context as the table says, an example),
# and nothing else does; offloadctl(8) and offload-sidecar(8) have every
# command and option the programs' own help lists; every config example of
# docs/ and README passes `nginx -t` (with the built module) or
# `offload-sidecar -t`; the man pages pass `mandoc -Tlint`, render with
# `man -l` without a warning and give `lexgrog` their whatis line.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
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
my %location_only = map { $_ => 1 }
    grep { !grep { $_ eq 'http' } @{ $module->{$_} } } keys %$module;

# ---- the references

# name => { syntax, default, context, example } from a reference's
# "## Directives" section of "### name" subsections
sub reference {
    my ($file) = @_;
    my $md = slurp($file);
    my ($part) = $md =~ /^\#\# [ ] Directives\n(.*?)(?=^\#\# [ ]|\z)/msx;
    my %d;
    for my $sec (split /^\#\#\# [ ]/mx, $part // '') {
        my ($name) = $sec =~ /\A(\S+)\n/ or next;
        $d{$name} = {
            syntax  => ($sec =~ /^\*\*Syntax:\*\* [ ] `([^`]+)`/mx)[0],
            default => ($sec =~ /^\*\*Default:\*\* [ ] (.+?) \s*$/mx)[0],
            context => ($sec =~ /^\*\*Context:\*\* [ ] (.+?) \s*$/mx)[0],
            example => ($sec =~ /^```\w+\n(.*?)^```$/msx)[0],
        };
    }
    return \%d;
}

sub check_reference {
    my ($what, $file, $table) = @_;
    my $ref = reference("$root/$file");
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
            "$file: $name: an example that uses it");
    }
    for my $name (sort grep { !exists $table->{$_} } keys %$ref) {
        fail("$file documents $name, which the $what does not know");
    }
}

check_reference('module', 'docs/ngx_http_offload_module.md', $module);
check_reference('sidecar', 'docs/sidecar.conf.md', $sidecar);

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
    my $page = slurp($man{'offload-sidecar.8'});
    like($page, qr/^\.(?:TP\n\.)?BI? \\-$_\b/m,
        "offload-sidecar.8 documents -$_") for @opts;
}

# ---- the config examples

# (info string, text, where) of each fenced block of docs/*.md and README
my @blocks;
for my $file ('README.md', map { s{^\Q$root/\E}{}r } glob "$root/docs/*.md") {
    my $md = slurp("$root/$file");
    while ($md =~ /^```([^\n]*)\n(.*?)^```[ \t]*$/msg) {
        my ($info, $text) = ($1, $2);
        my $line = 1 + (substr($md, 0, $-[0]) =~ tr/\n//);
        push @blocks, [ $info, $text, "$file:$line" ];
    }
}

# A sidecar or nginx config in an unmarked block would escape the checks.
for my $block (grep { $_->[0] eq '' } @blocks) {
    my (undef, $text, $where) = @$block;
    ok($text !~ /^\s*queue\s+\S+\s*\{/m && $text !~ /^\s*offload_\w+[ ;]/m,
        "$where: a config example is fenced as sidecar or nginx");
}

my $nginx_port = free_port();
my $n = 0;

# where nginx_conf() wants the module, readable by nginx's workers
copy(build_path('ngx_http_offload_module.so'),
    "$dir/ngx_http_offload_module.so") or die "copy the module: $!";
chmod 0644, "$dir/ngx_http_offload_module.so";

# Runs `nginx -t` on an example, inside what it needs: a fragment with
# `http {` is a whole file (its load_module is the built module's), one
# with `server {` goes in http, one with `location` in a server, other
# directives in http, or in a location when one of them wants it.
sub nginx_example {
    my ($text) = @_;
    my $file = "$dir/nginx-example-" . ++$n . '.conf';
    $text =~ s/^\s*load_module\s+\S*ngx_http_offload_module\.so\s*;\s*\n//mg;
    $text =~ s/\blisten\s+[^;]+;/listen 127.0.0.1:$nginx_port;/g;
    my $listen = "listen 127.0.0.1:$nginx_port;";
    my @used = $text =~ /(?:^|[{;]) \s* (offload_\w+)/mgx;

    if ($text =~ /^\s*http\s*\{/m) {
        my $temp = join '', map { "    ${_}_temp_path $dir/${_}_temp;\n" }
            qw(client_body proxy fastcgi uwsgi scgi);
        $text =~ s/^(\s*http\s*\{[^\n]*\n)/$1$temp/m;
        $text = "events {}\n$text" unless $text =~ /^\s*events\s*\{/m;
        spew($file, "load_module $dir/ngx_http_offload_module.so;\n"
            . "pid $dir/nginx.pid;\nerror_log $dir/error.log notice;\n"
            . $text);
    } else {
        my $http = $text =~ /^\s*server\s*\{/m ? $text
            : $text =~ /^\s*location\b/m ? "server {\n$listen\n$text}\n"
            : (grep { $location_only{$_} } @used)
                ? "server {\n$listen\nlocation / {\n$text}\n}\n"
            : $text;
        spew($file, nginx_conf(http => $http, workers => 1,
            level => 'notice', port => $nginx_port));
    }
    my $env = nginx_env();          # the ASan runtime first, under SANITIZE
    local @ENV{keys %$env} = values %$env;
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $file 2>&1`;
    return ($? >> 8, $out, $file);
}

my $plugin = build_path('examples/offload_example.so');
my ($me) = getpwuid($<);

# Runs `offload-sidecar -t` on an example: a plugin it loads is the
# example plugin (docs/HANDLERS.md), a user this host does not have is
# the one running the test, and a file of main directives alone gets a
# queue.
sub sidecar_example {
    my ($text) = @_;
    my $file = "$dir/sidecar-example-" . ++$n . '.conf';
    $text =~ s/^(\s*load_module\s+)\S+\s*;/$1$plugin;/mg;
    $text =~ s/^(\s*user\s+)(\S+)(?:\s+(\S+))?\s*;/
        defined getpwnam($2) && (!defined $3 || defined getgrnam($3))
            ? $& : "$1$me;"/mge;
    $text .= "queue q { handler echo; }\n" unless $text =~ /^\s*queue\s/m;
    spew($file, $text);
    my $out = `$sidecar_bin -t -c $file 2>&1`;
    return ($? >> 8, $out, $file);
}

my ($nginx_examples, $sidecar_examples) = (0, 0);
for my $block (@blocks) {
    my ($info, $text, $where) = @$block;
    if ($info eq 'nginx') {
        $nginx_examples++;
        my ($rc, $out, $file) = nginx_example($text);
        is($rc, 0, "$where: nginx -t accepts the example")
            or diag("$out\n" . slurp($file));
    } elsif ($info eq 'sidecar') {
        $sidecar_examples++;
        my ($rc, $out, $file) = sidecar_example($text);
        is($rc, 0, "$where: offload-sidecar -t accepts the example")
            or diag("$out\n" . slurp($file));
        like($out, qr/syntax is ok/, "$where: syntax is ok");
    }
}
# each directive's example, the README's and HANDLERS.md's
cmp_ok($nginx_examples, '>=', keys(%$module) + 3, 'nginx examples ran');
cmp_ok($sidecar_examples, '>=', keys(%$sidecar) + 3,
    'sidecar examples ran');

# The checks can fail: a wrong example is refused by each.
{
    my ($rc) = nginx_example("offload_pass echo;\noffload_nope 1;\n");
    isnt($rc, 0, 'nginx -t refuses an example with an unknown directive');
    ($rc) = sidecar_example("queue q { handler echo; workers 0; }\n");
    isnt($rc, 0, 'offload-sidecar -t refuses a wrong example');
}

done_testing();
