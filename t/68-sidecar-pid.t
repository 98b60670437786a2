#!/usr/bin/perl
# The pid directive, as nginx's: the supervisor's pid in a file, for
# scripts that signal it (SIGHUP reloads) where no systemd knows its
# MAINPID; replaced over a killed sidecar's, removed at a clean stop,
# refused on reload when it changes; a file it cannot write stops the
# start, with a message on stderr, and fails -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $file = "$dir/sidecar.pid";
my $conf = "pid $file;\nqueue echo { handler echo; workers 1; }\n";

start_redis();
spew($file, "999999\n");           # a killed sidecar's
start_sidecar(conf => $conf);
is(slurp($file), sidecar_pid() . "\n", 'the pid file holds the supervisor\'s '
    . 'pid (a stale one replaced)');
ok(!glob("$file.*"), 'no temporary file left');

kill 'HUP', (slurp($file) =~ /(\d+)/)[0];
ok(wait_until(sub { @{ events('reload') } == 1 }, scaled(10), 'reload'),
    'kill -HUP $(cat pid file) reloads');

my $text = slurp(sidecar_conf_file());
spew(sidecar_conf_file(), $text =~ s/sidecar\.pid/other.pid/r);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload_failed') } == 1 }, scaled(10),
    'reload refused'), 'a reload that changes pid is refused');
is(events('reload_failed')->[0]{report}{error},
    'pid cannot change on reload', 'saying why');
spew(sidecar_conf_file(), $text);

is(stop_sidecar(), 0, 'the sidecar stops');
ok(!-e $file, 'and removes its pid file');

# a pid file it cannot write: no start
my $bad = "$dir/bad.conf";
spew($bad, "redis 127.0.0.1:" . redis_port() . ";\nnode_name bad$$;\n"
    . "log stderr;\npid $dir/no/such/dir/sidecar.pid;\n"
    . "queue echo { handler echo; }\n");
my $out = `timeout 10 ${\ build_path('offload-sidecar')} -c $bad 2>&1`;
is($? >> 8, 1, 'a pid file that cannot be written: exit 1');
like($out, qr{cannot write the pid file "\Q$dir\E/no/such/dir/sidecar\.pid\.\d+": No such file or directory},
    'saying which and why') or diag($out);

# the same with the log in a file: stderr (a terminal, the journal) says
# where to look (before: nothing on stderr at all)
spew($bad, slurp($bad) =~ s{log stderr;}{log $dir/bad.log;}r);
$out = `timeout 10 ${\ build_path('offload-sidecar')} -c $bad 2>&1`;
is($? >> 8, 1, '... with a log file: exit 1');
like($out, qr{^offload-sidecar: not started: the log \(\Q$dir\E/bad\.log\) says why$}m,
    '... stderr says where to look') or diag($out);
like(slurp("$dir/bad.log"), qr{cannot write the pid file}, '... the log why');

# -t finds both, as nginx -t finds a log it cannot open (before: "syntax is
# ok", then the start failed)
for my $case ([ 'the pid file', "pid $dir/no/such/dir/sidecar.pid;",
                qr{cannot write the pid file "\Q$dir\E/no/such/dir/sidecar\.pid": No such file or directory} ],
              [ 'the log', "log $dir/no/such/dir/s.log;",
                qr{cannot open log "\Q$dir\E/no/such/dir/s\.log": No such file or directory} ]) {
    my ($what, $line, $re) = @$case;
    spew("$dir/t.conf", "redis 127.0.0.1:1;\n$line\n"
        . "queue echo { handler echo; }\n");
    $out = `${\ build_path('offload-sidecar')} -t -c $dir/t.conf 2>&1`;
    is($? >> 8, 1, "-t, $what in a directory that does not exist: exit 1");
    like($out, $re, '... saying which and why') or diag($out);
    like($out, qr{t\.conf: test failed}, '... test failed');
}
# both wrong: both said, as nginx -t says each of its errors
spew("$dir/t.conf", "redis 127.0.0.1:1;\nlog $dir/no/such/dir/s.log;\n"
    . "pid $dir/no/such/dir/sidecar.pid;\nqueue echo { handler echo; }\n");
$out = `${\ build_path('offload-sidecar')} -t -c $dir/t.conf 2>&1`;
like($out, qr{cannot[ ]open[ ]log[ ].*\n.*cannot[ ]write[ ]the[ ]pid[ ]file[ ].*\n
              .*t\.conf:[ ]test[ ]failed}sx,
    '-t, the log and the pid file wrong: both said, then test failed')
    or diag($out);
# a log that is a folder: the start would fail (EISDIR)
mkdir "$dir/logdir";
spew("$dir/t.conf", "redis 127.0.0.1:1;\nlog $dir/logdir;\n"
    . "queue echo { handler echo; }\n");
$out = `${\ build_path('offload-sidecar')} -t -c $dir/t.conf 2>&1`;
like($out, qr{cannot open log "\Q$dir\E/logdir": Is a directory},
    '-t, a log that is a folder: refused') or diag($out);

# run as root with a user, -t checks the pid file as that user, who writes
# it (before: as root, which may write where the user may not)
SKIP: {
    skip 'not root', 2 if $> != 0;
    mkdir "$dir/rootonly";
    chmod 0755, "$dir/rootonly";
    spew("$dir/t.conf", "redis 127.0.0.1:1;\nuser nobody;\n"
        . "pid $dir/rootonly/s.pid;\nqueue echo { handler echo; }\n");
    $out = `${\ build_path('offload-sidecar')} -t -c $dir/t.conf 2>&1`;
    is($? >> 8, 1, '-t as root, user nobody, a pid folder only root '
        . 'writes: exit 1');
    like($out, qr{cannot write the pid file "\Q$dir\E/rootonly/s\.pid": Permission denied},
        '... saying why') or diag($out);
}

spew("$dir/t.conf", "redis 127.0.0.1:1;\npid $dir/ok.pid;\nlog $dir/ok.log;\n"
    . "queue echo { handler echo; }\n");
$out = `${\ build_path('offload-sidecar')} -t -c $dir/t.conf 2>&1`;
is($? >> 8, 0, '-t, both writable: exit 0') or diag($out);
ok(!glob("$dir/ok.pid*"), '... no pid file left behind');
ok(!-e "$dir/ok.log", '... nor a log file made (one made as root, the '
    . 'sidecar\'s user could not write)');

finish();
