#!/usr/bin/perl
# make deb: the three Debian packages are built (lintian finding no error,
# which make deb checks), say what they need (the nginx ABI of the installed
# nginx, the system user, the unit and the conffiles), and work unpacked
# (dpkg -x) into a temporary root: stock nginx loads the module through the
# packaged snippet, the packaged sidecar runs a job that nginx offloads, and
# a program built against liboffload-dev's files alone submits one.  make
# deb builds only when a file of the tree changed since its last build.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

plan skip_all => 'the packages are built without the sanitizers'
    if sanitize();

my $repo = "$FindBin::Bin/..";
my $t0 = time;
my $out = `make -s -C $repo deb 2>&1`;
is($?, 0, 'make deb, lintian finds no error') or diag($out);
note(sprintf 'make deb took %.0f s', time - $t0);

my %deb;
for my $file (glob "$repo/build/deb/*.deb") {
    $deb{$1} = $file if $file =~ m{/([a-z0-9.+-]+)_[^/]*\.deb$};
}
my @packages = qw(libnginx-mod-http-offload offload-sidecar liboffload-dev);
ok($deb{$_}, "built $_") or give_up("no $_ in build/deb") for @packages;

# the fields, files and maintainer scripts of a package
sub field { my $v = `dpkg-deb -f $deb{$_[0]} $_[1]`; chomp $v; $v }
sub files { [ map { m{ \./(\S+)$} ? $1 : () } `dpkg-deb -c $deb{$_[0]}` ] }
sub control { scalar `dpkg-deb --info $deb{$_[0]} $_[1] 2>/dev/null` }
sub has_file {
    my ($pkg, $path) = @_;
    ok((grep { $_ eq $path } @{ files($pkg) }), "$pkg holds $path");
}

# ---- what the packages say

my $module_deps = field('libnginx-mod-http-offload', 'Depends');
my ($abi) = $module_deps =~ /\b(nginx-abi-[0-9][^\s,]*)/;
ok($abi, "the module depends on an nginx ABI ($module_deps)");
my $abi_re = quotemeta($abi // 'none');
like(`dpkg-query -W -f='\${Provides}' nginx`, qr/(^|[\s,])$abi_re(,|$)/,
    'the installed nginx provides it');
like($module_deps, qr/\blibhiredis0\.14\b/, 'and on libhiredis');
has_file('libnginx-mod-http-offload',
    "usr/lib/nginx/modules/ngx_http_offload_module.so");
has_file('libnginx-mod-http-offload',
    'usr/share/nginx/modules-available/mod-http-offload.conf');
my $postinst = control('libnginx-mod-http-offload', 'postinst');
like($postinst, qr/\bmod-http-offload\.conf:50-mod-http-offload\.conf\b/,
    'its postinst enables the snippet (dh_nginx) as 50-mod-http-offload.conf');
my $link = join '\s*\\\\\s*',
    'ln -sf /usr/share/nginx/modules-available/\$from',
    '/etc/nginx/modules-enabled/\$to';
like($postinst, qr/$link/, 'in /etc/nginx/modules-enabled');

my $sidecar_deps = field('offload-sidecar', 'Depends');
like($sidecar_deps, qr/\badduser\b/, "the sidecar depends on adduser");
like($sidecar_deps, qr/\b$_\b/, "and on $_")
    for qw(libev4 libhiredis0\.14 libjansson4 libssl3);
has_file('offload-sidecar', $_) for qw(usr/bin/offload-sidecar
    usr/bin/offloadctl lib/systemd/system/offload-sidecar.service
    etc/logrotate.d/offload-sidecar etc/offload/sidecar.conf);
is_deeply([ sort split /\n/, control('offload-sidecar', 'conffiles') ],
    [ '/etc/logrotate.d/offload-sidecar', '/etc/offload/sidecar.conf' ],
    'its conffiles: the example config and the logrotate file');
like(control('offload-sidecar', 'postinst'),
    qr/^\s*adduser --system --group [^\n]*(\\\n[^\n]*)*\soffload$/m,
    'its postinst creates the system user offload');

has_file('liboffload-dev', $_) for qw(usr/include/offload.h
    usr/include/offload_client.h);
my @archives = grep { m{^usr/lib/[^/]+/liboffload\.a$} }
    @{ files('liboffload-dev') };
is(scalar @archives, 1, 'liboffload-dev holds liboffload.a (multiarch)');

# every man page of docs/man/, compressed, with what it documents
for my $page (glob "$repo/docs/man/*.[1-9]") {
    my ($name, $section) = $page =~ m{([^/]+)\.([1-9])$};
    my $pkg = $name eq 'ngx_http_offload_module'
        ? 'libnginx-mod-http-offload' : 'offload-sidecar';
    has_file($pkg, "usr/share/man/man$section/$name.$section.gz");
}

# ---- what the packages do, unpacked

my $dir = tmpdir();
my $root = "$dir/root";
for my $pkg (@packages) {
    $out = `dpkg -x $deb{$pkg} $root 2>&1`;
    is($?, 0, "dpkg -x $pkg") or diag($out);
}

start_redis();

# The shipped example configuration passes the shipped sidecar's check,
# its log in the folder the package ships (-t checks the log can be made
# there; the unit's LogsDirectory= hands it to the offload user at start)
my $sidecar = "$root/usr/bin/offload-sidecar";
ok(-d "$root/var/log/offload", 'the package ships /var/log/offload');
spew("$dir/sidecar-deb.conf", slurp("$root/etc/offload/sidecar.conf")
    =~ s{^(\s*log\s+)/var/log/}{$1$root/var/log/}mr);
$out = `$sidecar -t -c $dir/sidecar-deb.conf 2>&1`;
is($?, 0, 'the example sidecar.conf passes offload-sidecar -t') or diag($out);
like(slurp("$root/lib/systemd/system/offload-sidecar.service"),
    qr{^ExecStart=/usr/bin/offload-sidecar -c /etc/offload/sidecar\.conf$}m,
    'the unit starts the packaged sidecar on /etc/offload/sidecar.conf');

# The packaged snippet names the module as Debian's do, relative to nginx's
# prefix (/usr/share/nginx, where modules/ leads to /usr/lib/nginx/modules):
# here the prefix is the test's folder and its modules/ the unpacked one.
my $snippet = "$root/usr/share/nginx/modules-available/mod-http-offload.conf";
is(slurp($snippet), "load_module modules/ngx_http_offload_module.so;\n",
    'the snippet loads the module from nginx\'s modules/');
symlink("$root/usr/lib/nginx/modules", "$dir/modules")
    or die "symlink: $!";
my %nginx = (module => 0, workers => 1, main => "include $snippet;",
    http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
}
HTTP
my $rc;
($rc, $out) = nginx_test(%nginx, port => free_port());
is($rc, 0, 'nginx -t loads the unpacked module') or diag($out);

{
    local $ENV{OFFLOAD_BUILD} = "$root/usr/bin";
    start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
}
start_nginx(%nginx);
ok(wait_nginx_ready('/jobs/echo', '{}', 1), 'nginx with the module ready');
my $r = post_json('/jobs/echo', { packaged => [1, 2] });
is($r->{status}, 200, 'a job through the packaged module and sidecar')
    or diag($r->{content});
is_deeply($r->{json}, { packaged => [1, 2] }, 'and its echoed result');

$out = `$root/usr/bin/offloadctl -c ${\sidecar_conf_file()} status 2>&1`;
is($?, 0, 'the packaged offloadctl reads the status') or diag($out);
like($out, qr/\becho\b/, 'which lists the queue echo');

# A client program against liboffload-dev's files only.
my $cc = $ENV{CC} // 'cc';
$out = `$cc -I$root/usr/include -o $dir/submit \\
    $repo/examples/c/submit_example.c $root/$archives[0] -lhiredis 2>&1`;
is($?, 0, 'a client program builds against liboffload-dev') or diag($out);
$out = `$dir/submit @{[redis_port()]} echo '{"packaged":true}' 2>&1`;
is($out, qq(200 {"packaged":true}\n), 'and submits a job with it');

finish();
