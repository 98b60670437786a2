#!/usr/bin/perl
# make install / make uninstall: every file where the Makefile says (the
# man pages of docs/man/ too), the example sidecar.conf that never replaces
# one already there, the module loadable by stock nginx through the
# installed snippet, a plugin and a client program built against the
# installed headers and library only, and uninstall removing exactly what
# install put there (the example config only while it is the example).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $root = "$FindBin::Bin/..";
my $dir = tmpdir();
my $prefix = "$dir/usr";
# No DESTDIR: the installed paths are the real ones, so the snippet and the
# unit name files that exist.
my $vars = "PREFIX=$prefix SYSCONFDIR=$dir/etc"
    . (sanitize() ? ' SANITIZE=1' : '');
my $out = `make -s -C $root install $vars 2>&1`;
is($?, 0, 'make install') or diag($out);

my @files = qw(bin/offload-sidecar bin/offloadctl
    lib/nginx/modules/ngx_http_offload_module.so
    share/nginx/modules-available/mod-http-offload.conf
    include/offload.h include/offload_client.h lib/liboffload.a
    lib/systemd/system/offload-sidecar.service);
# docs/man/<name>.<section>: share/man/man<section>/<name>.<section>
push @files, map { m{([^/]+)\.([1-9])$} ? "share/man/man$2/$1.$2" : () }
    glob "$root/docs/man/*.[1-9]";
ok(-f "$prefix/$_", "installed $_") for @files;
ok(-x "$prefix/bin/$_", "$_ is executable") for qw(offload-sidecar offloadctl);
ok(-f "$dir/etc/logrotate.d/offload-sidecar", 'installed the logrotate file');
my $conf = "$dir/etc/offload/sidecar.conf";
is(slurp($conf), slurp("$root/conf/offload-sidecar.conf"),
    'installed the example sidecar.conf');
# its log in the test's folder: -t checks it can be made, and
# /var/log/offload is made by the unit's LogsDirectory= at its first start
spew("$dir/sidecar-t.conf",
    slurp($conf) =~ s{^(\s*log\s+)/var/log/offload/}{$1$dir/}mr);
$out = `$prefix/bin/offload-sidecar -t -c $dir/sidecar-t.conf 2>&1`;
is($?, 0, 'which the installed sidecar accepts') or diag($out);
my $snippet = "$prefix/share/nginx/modules-available/mod-http-offload.conf";
is(slurp($snippet), "load_module $prefix/lib/nginx/modules/"
    . "ngx_http_offload_module.so;\n", 'the snippet loads the installed module');
like(slurp("$prefix/lib/systemd/system/offload-sidecar.service"),
    qr{^ExecStart=\Q$prefix\E/bin/offload-sidecar -c }m,
    'the unit starts the installed sidecar');

# stock nginx loads the installed module through the snippet
start_redis();
my ($rc, $msg) = nginx_test(module => 0, workers => 1, level => 'warn',
    main => "include $snippet;", port => free_port(), http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location /jobs/echo { offload_pass echo; }
}
HTTP
is($rc, 0, 'nginx -t with the installed snippet') or diag($msg);

# a plugin and a client program against the installed files only
my $cc = $ENV{CC} // 'cc';
my $san = sanitize() ? '-fsanitize=address,undefined' : '';
my $cmd = "$cc -shared -fPIC -I$prefix/include -o $dir/ex.so "
    . "$root/examples/c/offload_example.c -ljansson";
$out = `$cmd 2>&1`;
is($?, 0, 'the example plugin builds against the installed offload.h')
    or diag($out);
spew("$dir/s.conf", "redis 127.0.0.1:" . redis_port() . ";\n"
    . "load_module ex.so;\nqueue r { handler example.reverse; }\n");
$out = `$prefix/bin/offload-sidecar -t -c $dir/s.conf 2>&1`;
is($?, 0, 'the installed sidecar loads it') or diag($out);

$cmd = "$cc $san -I$prefix/include -o $dir/submit "
    . "$root/examples/c/submit_example.c $prefix/lib/liboffload.a -lhiredis";
$out = `$cmd 2>&1`;
is($?, 0, 'a client program links the installed liboffload') or diag($out);
start_sidecar(conf => "queue echo { handler echo; }\n");
$out = `$dir/submit @{[redis_port()]} echo '{"installed":true}' 2>&1`;
is($out, qq(200 {"installed":true}\n), 'and submits a job with it');

# an administrator's sidecar.conf survives install and uninstall
spew($conf, "# mine\n");
$out = `make -s -C $root install uninstall $vars 2>&1`;
is($?, 0, 'make install and uninstall again') or diag($out);
is(slurp($conf), "# mine\n", 'install and uninstall keep a changed config');
unlink $conf;
$out = `make -s -C $root install uninstall $vars 2>&1`;
is($?, 0, 'make install and uninstall once more') or diag($out);
ok(!-e $conf, 'uninstall removes the example config it installed');
my @left = grep { -e $_ } (map { "$prefix/$_" } @files),
    "$dir/etc/logrotate.d/offload-sidecar", $conf;
is_deeply(\@left, [], 'make uninstall removes every installed file');
my @other = split /\n/, `find $prefix $dir/etc -type f 2>/dev/null`;
is_deeply(\@other, [], 'and install put nothing else there');

finish();
