#!/usr/bin/perl
# A sync request that waits for its job does not keep its body: once
# Redis has the job, the buffers nginx read a body past its header buffer
# into (and offload's copy of it) are freed.  200 requests with 32 KB
# bodies come to one nginx worker, each once the one before is in the
# stream (freed memory stays in the worker's heap, for the next body: a
# burst read at once would leave its RSS at the peak), and wait, the
# queue's worker stopped: the nginx worker's RSS grows by less than a body
# per request (it kept two copies before), and then every request gets its
# own body back.  So does a 40 MB chunked body's buffer.  RSS under a
# sanitizer's quarantine says nothing: skipped there.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes ();
use OffloadTest;

plan skip_all => 'RSS is not measured under a sanitizer' if sanitize();

my ($n, $size) = (200, 32768);
my $stream = 'offload:{held}:jobs';

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue held { handler echo; workers 1; timeout off; }
CONF
ok(start_jobs_nginx(workers => 1, server => <<'CONF'), 'stack ready');
    client_max_body_size 1m;
    location ~ ^/held/([^/]+)$ { offload_pass $1; offload_timeout 5m; }
    location ~ ^/big-held/([^/]+)$ {
        offload_pass $1;
        offload_timeout 5m;
        client_max_body_size 64m;
    }
CONF

my $pad = 'x' x $size;
# the worker has served bodies of this size: its heap has grown once
is(post_json('/jobs/echo', qq({"p":"$pad"}))->{status}, 200, 'a warm-up')
    for 1 .. 3;

my ($nginx) = nginx_worker_pids();
my @held = grep { $_ } @{ worker_pids()->{held} || [] };
ok(@held == 1, 'the held queue has its worker');
kill 'STOP', @held;
sub rss_kb { (slurp("/proc/$nginx/status") =~ /^VmRSS:\s+(\d+) kB$/m)[0] }

my $len0 = redis_cmd('XLEN', $stream);
my $rss0 = rss_kb();
my @want = map { qq({"n":$_,"p":"$pad"}) } 0 .. $n - 1;
my (@s, $queued);
for my $i (0 .. $n - 1) {
    push @s, send_post('/held/held', $want[$i]);
    $queued = wait_until(sub { redis_cmd('XLEN', $stream) - $len0 > $i },
        scaled(10), "job $i in the stream") or last;
}
ok($queued, "$n jobs wait in the stream");
my $each = (rss_kb() - $rss0) * 1024 / $n;
cmp_ok($each, '<', $size, "a waiting request holds less than its body "
    . "($size bytes): " . int($each) . ' bytes');

kill 'CONT', @held;
my $right = grep {
    my $a = read_answer($s[$_], scaled(60));
    $a->{status} == 200 && $a->{content} eq $want[$_];
} 0 .. $n - 1;
is($right, $n, 'every request got its own body back');

# a chunked body: its buffers start past their chunks' size lines, inside
# the buffer nginx read it into, which goes too (before: a 40 MB body in
# 64 KB chunks held the nginx worker's 40 MB while its job waited; over
# glibc's largest mmap threshold, the buffer goes back to the kernel)
kill 'STOP', @held;
$len0 = redis_cmd('XLEN', $stream);
$rss0 = rss_kb();
my $big = '{"c":"' . ('c' x (40 * 2**20)) . '"}';
my $chunks = join('', map { sprintf("%x\r\n", length) . "$_\r\n" }
    unpack('(a65536)*', $big)) . "0\r\n\r\n";
my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
# the head alone first, as a client that writes it apart does: the first
# chunk's size line is then in the body's buffer, not in the head's
print $c "POST /big-held/held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    . "\r\n";
Time::HiRes::sleep(0.2);
print $c $chunks;
ok(wait_until(sub { redis_cmd('XLEN', $stream) > $len0 }, scaled(30),
    'the chunked job in the stream'), 'a 40 MB chunked body: its job waits');
my $held_kb = rss_kb() - $rss0;
cmp_ok($held_kb, '<', 10 * 1024, "its request holds less than 10 MB of "
    . "its 40 MB body: $held_kb kB");
kill 'CONT', @held;
my $a = read_answer($c, scaled(60));
ok($a->{status} == 200 && $a->{content} eq $big,
    'and gets its body back') or diag("$a->{status}, "
    . length($a->{content} // '') . ' bytes');

done_testing();
