#!/usr/bin/perl
# An address written as a URL with its login ("redis://user:secret@host",
# as redis-cli takes it) is refused on every side, and the error does not
# repeat it: error logs travel further than the config file.  A unix
# socket's path may still hold an '@'.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $secret = 's3cret-pw';
my @urls = ("redis://u:$secret\@127.0.0.1:6379", ":$secret\@127.0.0.1",
    "sentinel://u:$secret\@127.0.0.1:26379/mymaster",
    "cluster://u:$secret\@127.0.0.1:7000");
my $said = qr/a redis address takes no user or password/;
my $port = free_port();

for my $url (@urls) {
    my ($rc, $out) = nginx_test(http => <<"HTTP");
server {
    listen 127.0.0.1:$port;
    location /jobs/echo { offload_redis $url; offload_pass echo; }
}
HTTP
    isnt($rc, 0, "nginx -t refuses $url");
    like($out, qr/$said.*"user=" and "password="/, 'saying where they go')
        or diag($out);
    unlike($out, qr/\Q$secret\E/, 'without the password');

    my $conf = tmpdir() . '/login.conf';
    spew($conf, "redis $url;\nnode_name x;\nqueue echo { handler echo; }\n");
    $out = `${\ build_path('offload-sidecar')} -t -c $conf 2>&1`;
    isnt($? >> 8, 0, "sidecar -t refuses it");
    like($out, $said, 'saying why') or diag($out);
    unlike($out, qr/\Q$secret\E/, 'without the password');

    $out = `${\ build_path('offloadctl')} -r '$url' ping 2>&1`;
    isnt($? >> 8, 0, 'so does offloadctl -r');
    like($out, $said, 'saying why') or diag($out);
    unlike($out, qr/\Q$secret\E/, 'without the password');
}

my $conf = tmpdir() . '/at.conf';
spew($conf, "redis unix:/run/redis\@6379/redis.sock;\nnode_name x;\n"
    . "queue echo { handler echo; }\n");
my $out = `${\ build_path('offload-sidecar')} -t -c $conf 2>&1`;
unlike($out, $said, "a unix socket's path may hold an '\@'") or diag($out);

done_testing();
