#!/usr/bin/perl
# Redis at an IPv6 address: `offload_redis [::1]:<port>` in nginx and
# `redis [::1]:<port>;` in the sidecar (and so offloadctl).  Redis listens
# on both loopbacks, so the test checks from CLIENT LIST that the module's
# and the sidecar's connections really come over ::1.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::IP;
use Socket qw(SOCK_STREAM);
use Test::More;
use OffloadTest;

my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
    Type => SOCK_STREAM, Listen => 1);
plan skip_all => 'no IPv6 loopback (::1)' unless $probe;
close $probe;

my $port = start_redis(bind => ['127.0.0.1', '::1']);
start_sidecar(redis => "[::1]:$port", conf => <<'CONF');
queue echo { handler echo; workers 2; }
CONF
ok(start_jobs_nginx(redis => '[::1]:@REDIS_PORT@'), 'stack ready over ::1');

for my $i (1 .. 6) {
    my $r = post_json('/jobs/echo', { n => $i });
    is($r->{status}, 200, "echo job $i");
    is_deeply($r->{json}, { n => $i }, "echo job $i answer");
}

# Every client but this test's own (127.0.0.1) comes from ::1: the
# supervisor, two workers, and per nginx worker its command and pub/sub
# links.
my @clients = split /\n/, redis_cmd('CLIENT', 'LIST');
my @v6 = grep { /\baddr=\[::1\]:\d+ / } @clients;
my @v4 = grep { /\baddr=127\.0\.0\.1:\d+ / } @clients;
cmp_ok(scalar @v6, '>=', 7, 'sidecar and nginx connect over ::1')
    or diag(join "\n", @clients);
is(scalar(grep { !/cmd=client/ } @v4), 0, 'nobody else uses 127.0.0.1')
    or diag(join "\n", @v4);

my ($ctl, $conf) = (build_path('offloadctl'), sidecar_conf_file());
my $out = `$ctl -c $conf status 2>&1`;
is($? >> 8, 0, 'offloadctl status with redis [::1]') or diag($out);
like($out, qr/\Q${\ node_name()}\E/, 'offloadctl shows the node');
$out = `$ctl -r '[::1]:1' ping 2>&1`;
like($out, qr/cannot connect to \[::1\]:1:/,
    'offloadctl names an IPv6 address in brackets');

# Bad IPv6 forms are configuration errors on both sides.
my ($rc, $nout) = nginx_test(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    location /jobs/echo { offload_redis [::1:6379; offload_pass echo; }
}
HTTP
isnt($rc, 0, 'nginx -t refuses "[::1:6379"');
like($nout, qr/invalid redis address "\[::1:6379"/, 'naming it')
    or diag($nout);

my $bad = tmpdir() . '/bad-v6.conf';
spew($bad, "redis ::1:6379;\nnode_name x;\nqueue echo { handler echo; }\n");
my $sidecar = build_path('offload-sidecar');
$out = `$sidecar -t -c $bad 2>&1`;
like($out,
    qr/^\Q$bad\E:1: invalid redis address "::1:6379" \(expected .*\[ipv6\]/m,
    'sidecar -t: a bare IPv6 address needs brackets') or diag($out);

finish();
