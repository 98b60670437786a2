#!/usr/bin/perl
# The config examples users copy: every block of README.md and docs/*.md
# fenced ```nginx passes `nginx -t` with the built module, every one fenced
# ```sidecar `offload-sidecar -t`, each with no more around it than it
# needs.  A block that is partial or shows a refused config on purpose has
# `<!-- not checked: why -->` on the line before its fence; a block that
# looks like config but is not tagged nginx or sidecar fails, so that none
# escapes the checks.  An nginx fragment is tried as the body of http,
# then of a server, then of a location: the first where nginx does not
# say "not allowed here" is its context.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $dir = tmpdir();

# [ tag, text, "file:line" of the fence, reason it is not checked ] of
# each fenced block
my @blocks;
my $markers = 0;
for my $file ('README.md', map { s{^\Q$root/\E}{}r } glob "$root/docs/*.md") {
    my $md = slurp("$root/$file");
    $markers += () = $md =~ /<!--\s*not checked:/g;
    while ($md =~ /^```([^\n]*)\n(.*?)^```[ \t]*$/msg) {
        my ($tag, $text) = ($1, $2);
        my $before = substr($md, 0, $-[0]);
        my $line = 1 + ($before =~ tr/\n//);
        my ($why) = $before =~ /<!--\s*not checked:\s*(.*?)\s*-->\n\z/s;
        push @blocks, [ $tag, $text, "$file:$line", $why ];
    }
}

# A config example in a block not tagged nginx or sidecar (untagged, or
# "conf") would escape the checks.
for my $block (grep { $_->[0] !~ /\A(?:nginx|sidecar)\z/ } @blocks) {
    my ($tag, $text, $where) = @$block;
    ok($text !~ /(?:^|[{;])\s*offload_\w+[\s;]/m
        && $text !~ /^\s*queue\s+\S+\s*\{/m,
        "$where: a config example is fenced as nginx or sidecar"
        . ($tag eq '' ? '' : ", not $tag"));
}

# ---- nginx

my $port = free_port();
my $listen = "listen 127.0.0.1:\@PORT\@;";

# The index of the "}" that closes the block whose "{" is at $open, or
# undef; quoted strings and comments are skipped.
sub block_end {
    my ($text, $open) = @_;
    my $depth = 0;
    pos($text) = $open;
    while ($text =~ /\G(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|\#[^\n]*
                        |([{}])|[^"'#{}]+)/gcsx) {
        next unless defined $1;
        $depth += $1 eq '{' ? 1 : -1;
        return pos($text) - 1 if $depth == 0;
    }
    return undef;
}

# Takes the top-level "$name { ... }" block out of $$text; returns its body.
sub take_block {
    my ($name, $text) = @_;
    $$text =~ /^\s*\Q$name\E\s*\{/m or return '';
    my ($start, $open) = ($-[0], $+[0] - 1);
    my $end = block_end($$text, $open) // return '';
    my $body = substr($$text, $open + 1, $end - $open - 1);
    substr($$text, $start, $end + 1 - $start) = '';
    return $body;
}

# Every server of $text listens on the test's port: nginx -t binds what a
# listen names (and *:80 when none does).
sub test_listen {
    my ($text) = @_;
    $text =~ s/\blisten\s+[^;]+;/$listen/g;
    while ($text =~ /\bserver\s*\{/g) {
        my ($open, $next) = ($+[0] - 1, $+[0]);
        my $end = block_end($text, $open) // last;
        unless (substr($text, $open, $end - $open) =~ /\blisten\s/) {
            substr($text, $next, 0) = "\n    $listen";
        }
        pos($text) = $next;
    }
    return $text;
}

# The contexts a fragment may be written for, smallest wrapping first:
# [ name, its nginx_conf() options, an error nginx_conf() would hide ]
sub nginx_contexts {
    my ($text) = @_;
    # the module: the one nginx_conf() loads, from the build
    $text =~ s/^\s*load_module\s+\S*ngx_http_offload_module\.so\s*;.*\n//mg;
    $text = test_listen($text);
    if ($text =~ /^\s*(?:http|events)\s*\{/m) {
        # a whole nginx.conf: nginx_conf() writes the events block (the
        # example's is dropped), which nginx wants in every file
        my $http = take_block('http', \$text);
        my $events = $text =~ /^\s*events\s*\{/m;
        take_block('events', \$text);
        return [ 'a whole file', { main => $text, http => $http },
            $events ? undef : 'nginx: [emerg] no "events" section in '
                . "configuration (what nginx says of this file alone)\n" ];
    }
    return ([ 'http body', { http => $text } ],
        [ 'server body', { http => "server {\n    $listen\n$text}\n" } ],
        [ 'location body', { http => "server {\n    $listen\n"
            . "    location / {\n$text    }\n}\n" } ]);
}

# Runs `nginx -t` on an example in the first context that takes its
# directives where they are; returns (exit code, output, that context,
# the nginx.conf tested).
sub nginx_example {
    my ($text) = @_;
    my ($rc, $out, $ctx, %o);
    for my $c (nginx_contexts($text)) {
        %o = (%{ $c->[1] }, port => $port, workers => 1, level => 'notice');
        ($rc, $out) = nginx_test(%o);
        ($rc, $out) = (1, "$c->[2]with one added:\n$out") if defined $c->[2];
        $ctx = $c->[0];
        last unless $out =~ /directive is not allowed here/;
    }
    return ($rc, $out, $ctx, nginx_conf(%o));
}

# ---- sidecar

my $sidecar = build_path('offload-sidecar');
my $plugin = build_path('examples/offload_example.so');
my ($me) = getpwuid($<);
my $n = 0;

# Runs `offload-sidecar -t` on an example; returns (exit code, output, the
# file tested).  A plugin it loads is the example plugin (docs/HANDLERS.md),
# a user this host does not have is the one running the test, a program
# this host does not have that a command names is /bin/true (-t looks for
# it), a log or pid file in a folder this host does not have (or the test
# may not write) is in the test's (-t checks it can be written), and a file with no queue (the one
# thing a file must have) gets one.
sub sidecar_example {
    my ($text) = @_;
    my $file = "$dir/sidecar-example-" . ++$n . '.conf';
    $text =~ s{^(\s*(?:log|pid)\s+)(/\S*/)([^/\s;]+)}{-w $2 ? $& : "$1$dir/$3"}mge;
    $text =~ s/^(\s*load_module\s+)\S+\s*;/$1$plugin;/mg;
    $text =~ s{^(\s*command\s+"?)(/[^\s";]+)}{-x $2 ? $& : "$1/bin/true"}mge;
    $text =~ s/^(\s*user\s+)(\S+)(?:\s+(\S+))?\s*;/
        defined getpwnam($2) && (!defined $3 || defined getgrnam($3))
            ? $& : "$1$me;"/mge;
    $text .= "queue q { handler echo; }\n" unless $text =~ /^\s*queue\s/m;
    spew($file, $text);
    my $out = `$sidecar -t -c $file 2>&1`;
    return ($? >> 8, $out, $file);
}

# ---- the checks

# the tested file's lines, numbered as the tools' messages number them
sub numbered {
    my $i = 0;
    return join '', map { sprintf "%4d  %s\n", ++$i, $_ } split /\n/, $_[0];
}

my %checked = (nginx => 0, sidecar => 0);
my @skipped;
for my $block (@blocks) {
    my ($tag, $text, $where, $why) = @$block;
    next unless exists $checked{$tag};
    if (defined $why) {
        ok(length $why, "$where: \"not checked\" says why");
        push @skipped, "$where ($why)";
        next;
    }
    $checked{$tag}++;
    if ($tag eq 'nginx') {
        my ($rc, $out, $ctx, $conf) = nginx_example($text);
        ok($rc == 0 && $out !~ /\[(?:warn|error|crit|alert|emerg)\]/,
            "$where: nginx -t accepts the example ($ctx)")
            or diag("$out\n" . numbered($conf));
    } else {
        my ($rc, $out, $file) = sidecar_example($text);
        ok($rc == 0 && $out =~ /\A\S+: syntax is ok\n\z/,
            "$where: offload-sidecar -t accepts the example")
            or diag("$out\n" . numbered(slurp($file)));
    }
}
diag(sprintf '%d blocks checked: %d nginx, %d sidecar; %d not checked%s',
    $checked{nginx} + $checked{sidecar}, $checked{nginx}, $checked{sidecar},
    scalar @skipped, join '', map { "\n  $_" } @skipped);
is(scalar @skipped, $markers,
    'each "not checked" marker is right before an nginx or sidecar fence');
cmp_ok($checked{nginx}, '>', 0, 'nginx examples were found and checked');
cmp_ok($checked{sidecar}, '>', 0, 'sidecar examples were found and checked');

# The checks can fail: a wrong example is refused by each.
{
    my ($rc) = nginx_example("offload_pass echo;\noffload_nope 1;\n");
    isnt($rc, 0, 'nginx -t refuses an example with an unknown directive');
    ($rc) = nginx_example("location / { offload_pass; }\n");
    isnt($rc, 0, 'nginx -t refuses a location example with a wrong one');
    my ($out, $ctx);
    ($rc, $out, $ctx) = nginx_example("offload_pass echo;\n");
    is("$rc $ctx", '0 location body',
        'nginx -t takes a location-only directive in a location')
        or diag($out);
    ($rc) = sidecar_example("queue q { handler echo; workers 0; }\n");
    isnt($rc, 0, 'offload-sidecar -t refuses a wrong example');
}

done_testing();
