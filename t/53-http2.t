#!/usr/bin/perl
# Jobs over HTTP/2 (nginx reads an HTTP/2 body its own way: DATA frames,
# flow control): sync jobs small and big, an async job and its long poll,
# Prefer: wait, and an upload the client abandons.  curl speaks h2c
# (prior knowledge) to a plain listener.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
CONF
my $h2 = free_port();
ok(start_jobs_nginx(http => <<"HTTP"), 'stack ready');
server {
    listen 127.0.0.1:$h2 http2;
    offload_redis \@REDIS\@;
    client_max_body_size 64m;
    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/async/([^/]+)\$ {
        offload_pass \$1;
        offload_mode async;
        offload_jobs_url /j/;
    }
    location /j/ { offload_jobs; }
}
HTTP
my $dir = tmpdir();

# curl over h2c; returns (HTTP version:status, the body written to $out)
sub h2 {
    my ($path, %o) = @_;
    my @args = ('curl', '-sS', '--http2-prior-knowledge', '--max-time',
        $o{max} // scaled(20), '-o', "$dir/out", '-D', "$dir/head",
        '-w', '%{http_version}:%{http_code}');
    push @args, '--data-binary', "\@$o{file}" if $o{file};
    push @args, '-H', "Prefer: $o{prefer}" if $o{prefer};
    open my $fh, '-|', @args, "http://127.0.0.1:$h2$path" or die "curl: $!";
    my $status = do { local $/; <$fh> };
    close $fh;
    return ($status, slurp("$dir/out"), slurp("$dir/head"));
}

for my $size (10, 100_000, 3_000_000) {
    my $body = '"' . ('x' x $size) . '"';
    spew("$dir/body", $body);
    my ($status, $out) = h2('/jobs/echo', file => "$dir/body");
    is($status, '2:200', "echo of $size bytes over HTTP/2: 200");
    ok($out eq $body, "echo of $size bytes over HTTP/2: the body back");
}

spew("$dir/body", '{"ms":1}');
my ($status, $out, $head) = h2('/async/sleep', file => "$dir/body");
is($status, '2:202', 'async over HTTP/2: 202');
my ($loc) = $head =~ /^location: (\S+)/mi;
($status, $out) = h2(($loc // '/j/none') . '?wait=' . scaled(10));
like($out, qr/"status":"done"/, 'its long poll over HTTP/2: done');

spew("$dir/body", '{"ms":100}');
($status, $out) = h2('/async/sleep', file => "$dir/body", prefer => 'wait=5');
is($status, '2:200', 'Prefer: wait=5 over HTTP/2, a quick job: 200');

# an upload given up half way: nginx and the queue go on
spew("$dir/big", '"' . ('y' x 20_000_000) . '"');
system('curl', '-sS', '--http2-prior-knowledge', '--max-time', '0.3',
    '--limit-rate', '2M', '-o', '/dev/null', '--data-binary', "\@$dir/big",
    "http://127.0.0.1:$h2/jobs/echo");
spew("$dir/body", '{"after":1}');
($status, $out) = h2('/jobs/echo', file => "$dir/body");
is($status, '2:200', 'after an abandoned HTTP/2 upload: 200');
is($out, '{"after":1}', 'and the body back');

finish();
