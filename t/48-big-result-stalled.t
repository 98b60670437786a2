#!/usr/bin/perl
# A sync job's big result (a list) is read on nginx's bulk connection.  A
# command of that read still in the connection's queue, not sent, is bound
# by no watchdog: with the bulk connection lost and Redis's host refusing
# connections (down, while the command connection's path still held, here
# a proxy that closed its listening socket), the read found by the last
# look at the deadline waited until nginx could connect again, however
# long, and the client got nothing (a reviewer found it by reading).  Now
# such a read is looked at every second past the deadline and answers 503
# redis_unavailable, while the command connection goes on.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use BlackholeProxy;

start_redis();
redis_cmd('ACL', 'SETUSER', 'nginx-t', 'on', '>first', '~*', '&*', '+@all');
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
my $proxy = BlackholeProxy->start(redis_port());
ok(start_jobs_nginx(workers => 1,
    redis => '127.0.0.1:' . $proxy->port . ' user=nginx-t password=first',
    server => "location ~ ^/brief/([^/]+)\$ { offload_pass \$1;"
        . " offload_timeout 2s; }\n"), 'stack ready');

# a queue nobody reads: its job waits, its result is staged by hand
is(redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a queue nobody reads');

# nginx's connections: the bulk one has sent nothing since it connected
sub nginx_clients {
    return map { { map { split /=/, $_, 2 } split / / } }
        grep { /\buser=nginx-t\b/ } split /\n/, redis_cmd('CLIENT', 'LIST');
}
my $bulk;
ok(wait_until(sub {
    ($bulk) = grep { $_->{cmd} =~ /^(auth|ping|select)$/ } nginx_clients();
    $bulk }, scaled(10), 'bulk connection'), 'the bulk connection, idle');

my $s = send_post('/brief/parked', '{"big":1}');
my $e;
ok(wait_until(sub { $e = stream_entries('offload:{parked}:jobs')->[-1] },
    scaled(10), 'job queued'), 'a sync job queued, nobody runs it');

# the bulk connection lost, and no new connection taken
$proxy->refuse_new;
redis_cmd('CLIENT', 'KILL', 'ID', $bulk->{id});

# its result, 2 MB in 256 KB slices, as a worker stores a big one
my $key = "offload:{parked}:result:$e->{id}";
my $data = "OR1 $e->{id} 200 1000 2000 3000 4000\n\"" . ('r' x 2_000_000)
    . '"';
redis_cmd('RPUSH', $key, substr($data, $_ * 262144, 262144))
    for 0 .. int(length($data) / 262144);
redis_cmd('PEXPIRE', $key, 60000);

my $t0 = time;
my $a = read_answer($s, scaled(15));
my $took = time - $t0;
is($a->{status}, 503, 'the read waiting for its connection: 503')
    or diag(explain($a));
is(($a->{json} // {})->{error}{code}, 'redis_unavailable',
    '... redis_unavailable');
ok($took < scaled(7), sprintf('... within a few seconds of the deadline '
    . '(%.2f s)', $took));
like(slurp(nginx_error_log()), qr/bulk connection .*refused/,
    'nginx logged why it cannot connect');

# the command connection was up all along: small jobs are answered
my $r = post_json('/jobs/echo', { small => 1 });
is($r->{status}, 200, 'a small job meanwhile: 200');
$proxy->stop;

finish();
