#!/usr/bin/perl
# Big bodies on a one-worker nginx: a 48 MB echo job comes back byte for
# byte while small jobs on the same worker keep being answered; its result,
# over Redis' 32 MB pub/sub limit, arrives as a notice and is read from its
# key without the subscriber being dropped; a big body with a JSON error
# late in it is refused (the check runs in slices); a big XADD withdrawn
# half written is finished blank; nginx -t refuses a client_max_body_size
# Redis cannot carry.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

# ---- nginx -t: what a job can carry
my $server = "server {\n    listen 127.0.0.1:1;\n    %s\n}\n";
for my $case (
    [ 'client_max_body_size 512m', 1,
        qr/"client_max_body_size"[ ]is[ ]536870912,[ ]more[ ]than[ ]a[ ]job[ ]can[ ]carry\b.*Redis[ ]takes[ ]at[ ]most
        [ ]512m\b.*set[ ]it[ ]to[ ]511m[ ]or[ ]less/x ],
    [ 'client_max_body_size 0; client_body_buffer_size 600m', 1,
        qr/"client_body_buffer_size" is 629145600, more than a job can/ ],
    [ 'client_max_body_size 511m', 0 ],
    [ 'client_max_body_size 0', 0 ])
{
    my ($limits, $bad, $why) = @$case;
    my ($rc, $out) = nginx_test(http => "offload_redis 127.0.0.1:6379;\n"
        . sprintf($server, "location /a { offload_pass a; $limits; }\n"
            . "    location /b { client_max_body_size 2g; }"));
    if ($bad) {
        isnt($rc, 0, "nginx -t refuses $limits with offload_pass");
        like($out, $why, "nginx -t says why for $limits") or diag($out);
    } else {
        is($rc, 0, "nginx -t takes $limits with offload_pass") or diag($out);
    }
}

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
queue big { handler echo; workers 1; }
CONF
start_jobs_nginx(workers => 1, server => <<'CONF',
    client_max_body_size 64m;
    location = /status { offload_status; }
    location ~ ^/short/([^/]+)$ { offload_pass $1; offload_timeout 1ms; }
CONF
    ready => [ '/jobs/echo', '{}' ]) or give_up('stack did not start');

sub reconnects {
    my $r = http('GET', '/status');
    return ($r->{json} // {})->{redis_reconnects}
        // ($r->{content} =~ /"redis_reconnects":(\d+)/)[0];
}

# the Redis client id of nginx's subscriber: a new one after a reconnect
sub subscriber_id {
    my $list = redis_cmd('CLIENT', 'LIST', 'TYPE', 'pubsub') // '';
    my @ids = $list =~ /^id=(\d+) .*\bsub=1\b/mg;
    return @ids == 1 ? $ids[0] : undef;
}

my $reconnects = reconnects();
ok(defined $reconnects, 'offload_status shows the redis reconnects');
my $subscriber = subscriber_id();
ok(defined $subscriber, 'one subscriber in redis');

# ---- a 48 MB echo while small jobs keep coming
my $big = '{"data":"' . ('x' x (48 * 2**20)) . '","n":[1,2,3]}';
my $s = send_post('/jobs/big', $big);
my $sel = IO::Select->new($s);
my ($small, $small_ok) = (0, 0);
while (!$sel->can_read(0) && $small < 2000) {
    my $r = post_json('/jobs/echo', { i => $small });
    $small++;
    $small_ok++ if $r->{status} == 200
        && ($r->{json} // {})->{i} == $small - 1;
}
my $a = read_answer($s, scaled(120));
is($a->{status}, 200, '48 MB echo: 200');
ok(length($a->{content} // '') == length($big) && $a->{content} eq $big,
    '48 MB echo: the same bytes back')
    or diag('got ' . length($a->{content} // '') . ' bytes');
ok($small > 0, "small jobs were posted while the big one ran ($small)");
is($small_ok, $small, 'every small job meanwhile answered 200, its own');

# the result went over the 32 MB pub/sub limit: no subscriber dropped
is(subscriber_id(), $subscriber, 'the same subscriber connection as before');
is(reconnects(), $reconnects, 'nginx reconnected to redis no time');
unlike(slurp(nginx_error_log()), qr/connection lost|receives nothing/,
    'no lost redis connection in the error log');

# ---- a big body with a JSON error near its end: found by the sliced check
my $bad = '{"data":"' . ('y' x (3 * 2**20)) . '",}';
my $r = http('POST', '/jobs/echo', $bad);
is($r->{status}, 400, 'big bad JSON: 400');
is(($r->{json} // {})->{error}{code}, 'bad_json', 'big bad JSON: bad_json');
like(($r->{json} // {})->{error}{message} // '',
    qr/at offset \Q@{[ length($bad) - 1 ]}\E: expected a string key/,
    'big bad JSON: the offset of the error');

# ---- a 2 MB job goes the bulk way and back the small way
my $mid = '[' . join(',', (12345) x (2**20 / 3)) . ']';
$r = http('POST', '/jobs/echo', $mid);
is($r->{status}, 200, '2 MB echo: 200');
ok($r->{content} eq $mid, '2 MB echo: the same bytes back');

# ---- a chunked body in many small chunks (each its own buffer in nginx)
# is sent piece after piece without searching the buffers from the start
# every time (quadratic: tens of seconds for this one)
{
    my $n = int(8 * 2**20 / 129);
    my $json = '"' . ('c' x ($n * 129 - 2)) . '"';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "POST /jobs/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (my $at = 0; $at < length $json; $at += 129) {
        print $s "81\r\n", substr($json, $at, 129), "\r\n";
    }
    print $s "0\r\n\r\n";
    my $t0 = time;
    my $a = read_answer($s, scaled(60));
    is($a->{status}, 200, "8 MB in $n chunks of 129 bytes: 200");
    ok(($a->{content} // '') eq $json, 'the same bytes back');
    diag(sprintf '8 MB in %d chunks answered %.2f s after the last', $n,
        time - $t0);
}

# ---- the bulk way adds no stream either: a queue nobody serves is 404
$r = http('POST', '/jobs/nobody_serves_this', $mid);
is($r->{status}, 404, '2 MB job to a queue nobody serves: 404');
is(($r->{json} // {})->{error}{code}, 'unknown_queue', 'unknown_queue');
is(redis_cmd('EXISTS', 'offload:{nobody_serves_this}:jobs'), 0,
    'and no stream made');

# ---- a big job whose deadline passes while its XADD is being written: it
# is withdrawn half sent; the rest goes out blank (spaces, deadline 0), so
# Redis reads one whole command and the bulk link, with whatever else is
# on it, stays up; a worker answers the blank job "expired" without
# running it; what follows still works
my $before = reconnects();
$r = http('POST', '/short/big', '{"data":"' . ('z' x (16 * 2**20)) . '"}');
is($r->{status}, 504, 'deadline during a big XADD: 504');
my $blank;
ok(wait_until(sub {
    ($blank) = grep { /"expired"/ } map { redis_cmd('GET', $_) // '' }
        @{ redis_cmd('KEYS', 'offload:{big}:result:*') };
    $blank;
}, scaled(20), 'blank job expired'),
    'the withdrawn job reaches Redis whole and a worker answers it expired');
is(reconnects(), $before, 'no Redis connection was dropped for it');
unlike(slurp(nginx_error_log()), qr/withdrawn half sent, dropping/,
    'nginx did not drop the bulk connection');
$r = http('POST', '/jobs/echo', $mid);
is($r->{status}, 200, 'after a withdrawn XADD: 2 MB echo 200');
ok($r->{content} eq $mid, 'after a withdrawn XADD: the same bytes back');
$r = post_json('/jobs/echo', { after => 1 });
is(($r->{json} // {})->{after}, 1, 'after a withdrawn XADD: small echo');

finish();
