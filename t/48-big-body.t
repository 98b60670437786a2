#!/usr/bin/perl
# Big bodies on a one-worker nginx.  A body over 1 MB never travels in one
# Redis command: it goes into its body key, a list, in 256 KB slices (the
# first RPUSH in a MULTI with the key's PEXPIRE, then RPUSHXes, on the bulk
# connection) and its job is XADDed with an empty payload and "body
# <length>"; seen here in Redis itself, on a queue whose stream has no
# workers, and by a MONITOR client.  A queue nobody serves gets nothing
# written (404); a request whose deadline passes mid-upload leaves no key
# and no job (UNLINK), and the bulk connection stays up.  Also: a big body
# with a JSON error late in it is refused (the check runs in slices); nginx
# -t refuses a client_max_body_size Redis cannot carry; a result over 1 MB,
# a list of slices, arrives as a notice and is read by LLEN and an LINDEX
# per element (staged here by the test as the worker will write it; also
# found by the last look at the deadline, and answered, not 504, when the
# deadline's last timer passes while it is read), and a 48 MB echo, over
# Redis' 32 MB pub/sub limit, needs the sidecar side of body keys) without
# the subscriber being dropped.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;
use RedisMonitor;

# ---- nginx -t: what a job can carry
my $server = "server {\n    listen 127.0.0.1:1;\n    %s\n}\n";
for my $case (
    [ 'client_max_body_size 512m', 1,
        qr/"client_max_body_size"[ ]is[ ]536870912[ ]in[ ]location[ ]"\/a",[ ]more[ ]than[ ]a[ ]job[ ]can[ ]carry\b.*Redis[ ]takes[ ]at[ ]most
        [ ]512m\b.*set[ ]it[ ]to[ ]511m[ ]or[ ]less/x ],
    [ 'client_max_body_size 0; client_body_buffer_size 600m', 1,
        qr/"client_body_buffer_size" is 629145600 in location "\/a", more than a job can/ ],
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
    location ~ ^/brief/([^/]+)$ { offload_pass $1; offload_timeout 400ms; }
    location ~ ^/late/([^/]+)$ { offload_pass $1; offload_timeout 3s; }
    location ~ ^/mid/([^/]+)$ { offload_pass $1; offload_timeout 3s; }
    location ~ ^/huge/([^/]+)$ { offload_pass $1; offload_timeout 120s; }
CONF
    ready => [ '/jobs/echo', '{}' ]) or give_up('stack did not start');

# queue "parked": a stream, as a worker makes it, that nobody reads: its
# jobs and their body keys stay in Redis to be looked at
is(redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a queue nobody reads');

my $SLICE = 262144;

sub reconnects {
    my $r = http('GET', '/status');
    return ($r->{json} // {})->{redis_reconnects}
        // ($r->{content} =~ /"redis_reconnects":(\d+)/)[0];
}

# the Redis client id of nginx's subscriber (its reply channel, and
# offload:jobs:done for Idempotency-Key duplicates): a new one after a
# reconnect
sub subscriber_id {
    my $list = redis_cmd('CLIENT', 'LIST', 'TYPE', 'pubsub') // '';
    my @ids = $list =~ /^id=(\d+) .*\bsub=[1-9]\b/mg;
    return @ids == 1 ? $ids[0] : undef;
}

# A JSON body of about $mb MB in which no two slices look alike.
sub body_of {
    my ($mb, $tag) = @_;
    my $n = int($mb * 2**20 / 8);
    return qq({"$tag":") . join('', map { sprintf '%07d,', $_ } 1 .. $n)
        . qq(","q":"\\"\xc3\xa9\\\\"});
}

my $reconnects = reconnects();
ok(defined $reconnects, 'offload_status shows the redis reconnects');
my $subscriber = subscriber_id();
ok(defined $subscriber, 'one subscriber in redis');
my $mon = RedisMonitor->start;

# the elements of a list key, joined
sub list_of {
    my ($key) = @_;
    my $l = redis_cmd('LRANGE', $key, 0, -1);
    return ref $l eq 'ARRAY' ? join('', @$l) : undef;
}

# ---- a 6 MB body: EXISTS, MULTI, RPUSH, PEXPIRE, EXEC and RPUSHXes of its
# body key, then the XADD
my $body = body_of(6, 'six');
my $t0 = time;
my $sock = send_post('/jobs/parked', $body);
my $xadd = $mon->wait_for(
    sub { $_[0][1] eq 'XADD' && $_[0][2] eq 'offload:{parked}:jobs' },
    scaled(20));
ok($xadd, '6 MB: its job is XADDed');
my $entries = stream_entries('offload:{parked}:jobs');
is(scalar @$entries, 1, '6 MB: one entry in the stream');
my $e = $entries->[0] // {};
is($e->{payload}, '', '6 MB: the entry\'s payload is empty');
is($e->{body}, length $body, '6 MB: the entry says "body <length>"');
my $key = 'offload:{parked}:body:' . ($e->{id} // '?');
my $stored = list_of($key);
ok(defined $stored && $stored eq $body,
    '6 MB: the body list\'s elements, joined, are the body byte for byte')
    or diag('stored ' . length($stored // '') . ' bytes');
my $slices = int((length($body) + $SLICE - 1) / $SLICE);
is(redis_cmd('LLEN', $key), $slices, "6 MB: in $slices elements");
my $pttl = redis_cmd('PTTL', $key);
my $ms = (time - $t0) * 1000;
# offload_timeout 30s (the default) and a grace of 60 s, from submission
ok($pttl > 30000 && $pttl <= 90000 && $pttl >= 90000 - $ms - 1000,
    "6 MB: the body key lives to the deadline and the grace ($pttl ms)");

my @cmds = $mon->on_key($key);
is_deeply([ map { $_->[0] } @cmds ],
    [ 'RPUSH', 'PEXPIRE', ('RPUSHX') x ($slices - 1) ],
    "6 MB: RPUSH, PEXPIRE, then RPUSHXes: $slices slices in all");
ok(($cmds[1][2] // '') =~ /^\d+\z/ && $cmds[1][2] > 30000
    && $cmds[1][2] <= 90000, '6 MB: the PEXPIRE gives the key its lifetime ('
    . ($cmds[1][2] // '?') . ' ms)');
ok(join('', map { $_->[2] } grep { $_->[0] =~ /^RPUSHX?$/ } @cmds) eq $body,
    '6 MB: the slices, in order, are the body');
my @seen = @{ $mon->seen };
my ($i_exists) = grep { $seen[$_][1] eq 'EXISTS'
    && $seen[$_][2] eq 'offload:{parked}:jobs' } 0 .. $#seen;
my ($i_set) = grep { $seen[$_][1] eq 'RPUSH' && $seen[$_][2] eq $key }
    0 .. $#seen;
ok(defined $i_exists && defined $i_set && $i_exists < $i_set,
    '6 MB: EXISTS of the stream came first');
my ($i_multi) = grep { $seen[$_][1] eq 'MULTI' } reverse 0 .. $i_set // 0;
ok(defined $i_multi && defined $i_set
    && "@{[ map { $seen[$_][1] } $i_set .. $i_set + 2 ]}"
       eq 'RPUSH PEXPIRE EXEC',
    '6 MB: the first RPUSH and the PEXPIRE in one MULTI ... EXEC');
my $longest = $mon->longest_arg;
ok($longest <= $SLICE + 64, "no argument longer than a slice ($longest)");
diag(sprintf '6 MB uploaded in %.1f ms (first RPUSH to XADD, Redis clock)',
    ($xadd->[0] - $seen[$i_set // 0][0]) * 1000);
close $sock;

# a chunked body in many small buffers: each slice is a window of them
{
    my $n = int(2 * 2**20 / 129);
    my $json = '"' . substr(join('', map { sprintf '%06d', $_ }
        1 .. $n * 129 / 6 + 1), 0, $n * 129 - 2) . '"';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "POST /jobs/parked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (my $at = 0; $at < length $json; $at += 129) {
        print $s "81\r\n", substr($json, $at, 129), "\r\n";
    }
    print $s "0\r\n\r\n";
    ok(wait_until(sub { @{ stream_entries('offload:{parked}:jobs') } == 2 },
        scaled(20), 'chunked job XADDed'), "2 MB in $n chunks: XADDed");
    my $e = stream_entries('offload:{parked}:jobs')->[1] // {};
    my $got = list_of("offload:{parked}:body:" . ($e->{id} // ''));
    ok(defined $got && $got eq $json,
        "2 MB in $n chunks of 129 bytes: the body key holds them in order");
    close $s;
}

# leave nothing behind for the checks below
redis_cmd('DEL', map { "offload:{parked}:body:$_->{id}" }
    @{ stream_entries('offload:{parked}:jobs') });
redis_cmd('XTRIM', 'offload:{parked}:jobs', 'MAXLEN', '0');

# ---- a queue nobody serves: 404, and nothing written
$mon->forget;
my $r = http('POST', '/jobs/nobody_serves_this', body_of(3, 'nobody'));
is($r->{status}, 404, '3 MB job to a queue nobody serves: 404');
is(($r->{json} // {})->{error}{code}, 'unknown_queue', 'unknown_queue');
is(redis_cmd('EXISTS', 'offload:{nobody_serves_this}:jobs'), 0,
    'and no stream made');
is_deeply(redis_cmd('KEYS', 'offload:*body*'), [], 'and no body key');
$mon->catch_up(5);
is_deeply([ map { $_->[1] } grep { "@$_[2 .. $#$_]" =~ /nobody_serves/ }
    @{ $mon->seen } ], [ 'EXISTS', 'EXISTS' ],
    'only EXISTS reached redis for it (and the test\'s own)');

# ---- the deadline passes mid-upload (Redis frozen from the first
# slice's MULTI on, the slice on its way): no XADD, no more slices, the
# key is unlinked behind those on their way, a slice half written is
# finished blank (with small socket buffers: run the file in a network
# namespace with a low tcp_wmem and tcp_rmem to see one) and the bulk
# connection stays up
{
    my $before = reconnects();
    my $big = body_of(48, 'late');
    $mon->forget;
    my $s = send_post('/brief/parked', $big);
    my $exists = $mon->wait_for(sub { $_[0][1] eq 'EXISTS'
        && $_[0][2] eq 'offload:{parked}:jobs' }, scaled(20));
    my $multi = $mon->wait_for(sub { $_[0][1] eq 'MULTI' }, scaled(20));
    kill 'STOP', redis_pid();
    my $a = read_answer($s, scaled(10));
    kill 'CONT', redis_pid();
    ok($exists && $multi, '48 MB, 400 ms: EXISTS of the stream, the first '
        . 'slice\'s MULTI');
    is($a->{status}, 504, '48 MB, 400 ms: the deadline passed: 504');
    is(($a->{json} // {})->{error}{code}, 'timeout', 'code timeout');
    my $del = $mon->wait_for(sub { $_[0][1] eq 'UNLINK'
        && $_[0][2] =~ /^offload:\{parked\}:body:/ }, scaled(10));
    ok($del, '48 MB, 400 ms: its body key is unlinked');
    my $bkey = $del ? $del->[2] : '?';
    my @slices = grep { $_->[0] =~ /^RPUSHX?$/ } $mon->on_key($bkey);
    is(($mon->on_key($bkey))[-1][0], 'UNLINK',
        'after the slices on their way');
    my $all = int((length($big) + $SLICE - 1) / $SLICE);
    ok(@slices < $all, 'the upload stopped (' . scalar(@slices)
        . " of $all slices ran)");
    diag('a slice half written was finished blank: '
        . ((grep { $_->[2] =~ / {64}\z/ } @slices) ? 'yes'
                                                   : 'not this time'));
    is(redis_cmd('EXISTS', $bkey), 0, 'no body key left');
    is_deeply([ grep { $_->[1] eq 'XADD' } @{ $mon->seen } ], [],
        'no XADD');
    is(scalar @{ stream_entries('offload:{parked}:jobs') }, 0, 'no entry');
    is(reconnects(), $before, 'no Redis connection was dropped for it');
    unlike(slurp(nginx_error_log()),
        qr/withdrawn half sent, dropping|connection lost|no reply in time/,
        'nginx did not drop the bulk connection');

    # the next big body goes through on the same connection
    my $next = body_of(3, 'next');
    my $s2 = send_post('/jobs/parked', $next);
    ok(wait_until(sub { @{ stream_entries('offload:{parked}:jobs') } == 1 },
        scaled(20), 'next job XADDed'), 'after it: a 3 MB job is XADDed');
    my $e = stream_entries('offload:{parked}:jobs')->[0] // {};
    my $got = list_of("offload:{parked}:body:" . ($e->{id} // ''));
    ok(defined $got && $got eq $next, 'after it: with its body in its key');
    close $s2;
    my $p = post_json('/jobs/echo', { after => 1 });
    is(($p->{json} // {})->{after}, 1, 'after it: a small echo');
}

# ---- a body of exactly 1 MB still goes inline, in one XADD; its echo, a
# header longer, is over the notice limit: a list read by LLEN, then
# LINDEXes on the bulk connection (until the sidecar side lands the worker
# stores a string: found by the last look at the deadline, one GET)
{
    my $mb = '"' . join('', map { sprintf '%07d,', $_ } 1 .. 2**17);
    $mb = substr($mb, 0, 2**20 - 1) . '"';
    $mon->forget;
    my $r = http('POST', '/mid/echo', $mb);
    is($r->{status}, 200, '1 MB echo: 200');
    ok(($r->{content} // '') eq $mb, '1 MB echo: the same bytes back');
    $mon->catch_up(scaled(10));
    my ($xadd) = grep { $_->[1] eq 'XADD' && $_->[2] eq 'offload:{echo}:jobs'
        && grep { length == 2**20 } @$_ } @{ $mon->seen };
    ok($xadd, '1 MB: one XADD with the payload inline');
    is_deeply([ map { "$_->[1] $_->[2]" } grep { $_->[1] =~ /^(RPUSHX?)$/
        && $_->[2] =~ /:body:/ } @{ $mon->seen } ], [], '1 MB: no body key');
    my @reads = map { "$_->[1] " . ($_->[3] // '') } grep {
        $_->[1] =~ /^(LLEN|LINDEX|GETRANGE|GET)$/
        && $_->[2] =~ /^offload:\{echo\}:result:/ } @{ $mon->seen };
    is("@reads", 'LLEN  LINDEX 0 LINDEX 1 LINDEX 2 LINDEX 3 LINDEX 4',
        '1 MB: the result read by LLEN and an LINDEX per slice');
}

# ---- big results, staged as the worker writes them: a list of slices,
# the first starting with the header line, under the result key of a job
# of the queue nobody reads
sub parked_job {
    my ($path, $tag) = @_;
    my $n = @{ stream_entries('offload:{parked}:jobs') };
    my $s = send_post($path, qq({"$tag":1}));
    wait_until(sub { @{ stream_entries('offload:{parked}:jobs') } > $n },
        scaled(10), "$tag XADDed") or return ($s);
    my $e = stream_entries('offload:{parked}:jobs')->[-1];
    return ($s, $e->{id}, $e->{reply});
}

# RPUSHes the result "OR1 <id> 200 ...\n<body>" in elements of the sizes
# given (the last size repeated), a slice each by default
sub stage_list {
    my ($id, $body, @sizes) = @_;
    my $data = "OR1 $id 200 1000 2000 3000 4000\n$body";
    my $key = "offload:{parked}:result:$id";
    @sizes = ($SLICE) unless @sizes;
    my $n = 0;
    for (my $at = 0; $at < length $data; $n++) {
        my $size = $sizes[$n] // $sizes[-1];
        redis_cmd('RPUSH', $key, substr($data, $at, $size));
        $at += $size;
    }
    redis_cmd('PEXPIRE', $key, 60000);
    return $n;
}

{
    # after a notice: LLEN, an LINDEX per element, two on their way
    my $big = body_of(5, 'listed');
    my ($s, $id, $reply) = parked_job('/jobs/parked', 'notice');
    ok($id && $reply, 'a parked job: its id and reply channel');
    my $n = stage_list($id, $big);
    $mon->forget;
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    my $a = read_answer($s, scaled(20));
    is($a->{status}, 200, "a 5 MB list result in $n slices, noticed: 200");
    ok(($a->{content} // '') eq $big, 'the body byte for byte')
        or diag('got ' . length($a->{content} // '') . ' bytes');
    # a sync job's big result has no other reader
    ok(wait_until(sub { redis_cmd('EXISTS', "offload:{parked}:result:$id")
        eq '0' }, scaled(5), 'the result deleted'), 'then deleted');
    $mon->catch_up(scaled(10));
    my @reads = map { "$_->[1]" . (defined $_->[3] ? " $_->[3]" : '') }
        grep { ($_->[2] // '') eq "offload:{parked}:result:$id"
               && $_->[1] ne 'EXISTS' } @{ $mon->seen };   # the test's
    is("@reads", join(' ', 'LLEN', (map { "LINDEX $_" } 0 .. $n - 1),
        'UNLINK'), 'read by LLEN, then an LINDEX per element in order, '
        . 'then UNLINK');

    # elements of other sizes: the first the header line alone, some empty
    ($s, $id, $reply) = parked_job('/jobs/parked', 'odd');
    my $odd = body_of(2, 'odd');
    redis_cmd('RPUSH', "offload:{parked}:result:$id",
        "OR1 $id 200 1000 2000 3000 4000\n", '', substr($odd, 0, 100000),
        '', map { substr($odd, $_, $SLICE) }
            grep { $_ % $SLICE == 100000 } 100000 .. length($odd) - 1);
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    $a = read_answer($s, scaled(20));
    is($a->{status}, 200, 'a list result with a bare header and empty '
        . 'elements: 200');
    ok(($a->{content} // '') eq $odd, 'the body byte for byte');

    # an element longer than a worker writes: not a worker's result
    ($s, $id, $reply) = parked_job('/jobs/parked', 'fat');
    redis_cmd('RPUSH', "offload:{parked}:result:$id",
        "OR1 $id 200 1000 2000 3000 4000\n", 'x' x ($SLICE + 1));
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    $a = read_answer($s, scaled(20));
    is($a->{status}, 502, 'a list result of an element over a slice: 502');
    is(($a->{json} // {})->{error}{code}, 'bad_result', 'bad_result');

    # a list result of another job's id under this job's key: no worker's
    # (502), and no answer will come: not waited for, the key left there
    ($s, $id, $reply) = parked_job('/jobs/parked', 'foreign');
    redis_cmd('RPUSH', "offload:{parked}:result:$id",
        'OR1 ' . ('f' x 32) . " 200 1000 2000 3000 4000\n", 'x' x 1000);
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    $a = read_answer($s, scaled(20));
    is($a->{status}, 502, "a list result of another job's id: 502");
    is(($a->{json} // {})->{error}{code}, 'bad_result', 'bad_result');
    is(redis_cmd('EXISTS', "offload:{parked}:result:$id"), 1,
        'and its key left there');

    # no Server-Timing lost: the header came from the first element
    ($s, $id, $reply) = parked_job('/jobs/parked', 'timing');
    stage_list($id, body_of(1.5, 'timing'), 1000, $SLICE);
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    my $raw = read_raw($s, scaled(20));
    like(substr($raw, 0, 1000), qr{\r\nServer-Timing:[ ]queue;dur=1\.000,
        [ ]run;dur=2\.000,[ ]cpu;dur=3\.000,
        [ ]traceparent;desc="00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]"\r\n}x,
        'its header decoded from element 0');

    # the notice lost: the last look at the deadline finds the list
    # (GETRANGE answers WRONGTYPE) and reads it the big way (a deadline the
    # staging of 3 MB from here fits in, even on a loaded machine)
    ($s, $id, $reply) = parked_job('/late/parked', 'looked');
    my $t0 = time;
    my $late = body_of(3, 'looked');
    $n = stage_list($id, $late);
    $mon->forget;
    $a = read_answer($s, scaled(20));
    is($a->{status}, 200, 'a list result never noticed: 200 at the deadline');
    ok(($a->{content} // '') eq $late, 'the body byte for byte');
    ok(wait_until(sub { redis_cmd('EXISTS', "offload:{parked}:result:$id")
        eq '0' }, scaled(5), 'the result deleted'), 'then deleted');
    $mon->catch_up(scaled(10));
    @reads = map { $_->[1] } grep { ($_->[2] // '') eq
        "offload:{parked}:result:$id" && $_->[1] ne 'EXISTS' }
        @{ $mon->seen };
    is("@reads", join(' ', 'GETRANGE', 'LLEN', ('LINDEX') x $n, 'UNLINK'),
        'the last look: GETRANGE (WRONGTYPE), then LLEN and LINDEXes, then '
        . 'UNLINK');

    # the deadline's last timer passing while the last look's big read is
    # under way (Redis frozen mid-read, for less than a link's watchdog):
    # the read answers, not a 504 (the job ended, its result was there).
    # Staged under another key and renamed: the look finds it whole.
    # The slices after the first are staged before the job is made (32 MB
    # take longer than its 3 s deadline on a loaded machine), the first,
    # which carries the job's id, once it is known.
    my $slow = body_of(32, 'slow');
    my $head = length "OR1 " . ('0' x 32) . " 200 1 1\n";
    my ($tries, $gap, $sa) = (0, 0);
    while ($tries++ < 3 && $gap < 0.5) {
        my $staged = "offload:{parked}:stage:slow$tries";
        my @rest;
        for (my $at = $SLICE - $head; $at < length $slow; $at += $SLICE) {
            push @rest, [ 'RPUSH', $staged, substr($slow, $at, $SLICE) ];
        }
        redis_cmds(@rest, [ 'PEXPIRE', $staged, 60000 ]);
        ($s, $id, $reply) = parked_job('/late/parked', 'slow');
        my $key = "offload:{parked}:result:$id";
        redis_cmd('LPUSH', $staged,
            "OR1 $id 200 1 1\n" . substr($slow, 0, $SLICE - $head));
        redis_cmd('RENAME', $staged, $key);
        # (a monitor of its own: the staging's 32 MB are not parsed)
        my $watch = RedisMonitor->start;
        $watch->wait_for(sub { $_[0][1] eq 'LLEN' && $_[0][2] eq $key },
            scaled(10)) or last;
        kill 'STOP', redis_pid();
        # (a 504 would come 1 s after the deadline)
        IO::Select->new($s)->can_read(1.6);
        kill 'CONT', redis_pid();
        $sa = read_answer($s, scaled(20));
        $watch->catch_up(scaled(10));
        my @at = map { $_->[0] } grep { ($_->[2] // '') eq $key }
            @{ $watch->seen };
        $gap = 0;
        for my $i (1 .. $#at) {
            $gap = $at[$i] - $at[$i - 1] if $at[$i] - $at[$i - 1] > $gap;
        }
        diag(sprintf 'try %d: Redis frozen %.2f s into the read, answer %d',
            $tries, $gap, $sa->{status});
    }
    ok($gap >= 0.5, sprintf 'Redis was frozen mid-read (%.2f s)', $gap);
    is($sa->{status}, 200, 'a big read under way past the deadline: 200');
    ok(($sa->{content} // '') eq $slow, 'the body byte for byte')
        or diag('got ' . length($sa->{content} // '') . ' bytes: '
            . substr($sa->{content} // '', 0, 200));

    # a string result over a slice (up to 1 MB: published whole, or here
    # never) is read whole by the last look
    ($s, $id, $reply) = parked_job('/late/parked', 'string');
    my $str = body_of(0.9, 'string');
    redis_cmd('SET', "offload:{parked}:result:$id",
        "OR1 $id 200 1 1\n$str", 'PX', 60000);
    $mon->forget;
    $a = read_answer($s, scaled(20));
    is($a->{status}, 200, 'a 0.9 MB string result never published: 200');
    ok(($a->{content} // '') eq $str, 'the body byte for byte');
    $mon->catch_up(scaled(10));
    @reads = map { $_->[1] } grep { ($_->[2] // '') eq
        "offload:{parked}:result:$id" } @{ $mon->seen };
    is("@reads", 'GETRANGE GET', 'the last look: GETRANGE, then one GET');

    # a notice for a result key that is not there: a lost result, 504 at
    # the deadline
    ($s, $id, $reply) = parked_job('/brief/parked', 'lost');
    redis_cmd('PUBLISH', $reply, "ON1 $id");
    $a = read_answer($s, scaled(20));
    is($a->{status}, 504, 'a notice with no result behind it: 504');
    is(($a->{json} // {})->{error}{code}, 'timeout', 'code timeout');

    redis_cmd('DEL', map { "offload:{parked}:result:$_->{id}" }
        @{ stream_entries('offload:{parked}:jobs') });
    redis_cmd('XTRIM', 'offload:{parked}:jobs', 'MAXLEN', '0');
}

# ---- a big body with a JSON error near its end: found by the sliced check
my $bad = '{"data":"' . ('y' x (3 * 2**20)) . '",}';
$r = http('POST', '/jobs/echo', $bad);
is($r->{status}, 400, 'big bad JSON: 400');
is(($r->{json} // {})->{error}{code}, 'bad_json', 'big bad JSON: bad_json');
like(($r->{json} // {})->{error}{message} // '',
    qr/at offset \Q@{[ length($bad) - 1 ]}\E: expected a string key/,
    'big bad JSON: the offset of the error');

# ---- end to end: a 48 MB echo while small jobs keep coming; its result,
# over the 32 MB pub/sub limit, comes as a notice and is read by LINDEX
$mon->forget;
my $huge = '{"data":"' . ('x' x (48 * 2**20)) . '","n":[1,2,3]}';
# (a deadline of its own: on a loaded 2-core machine the 48 MB job, with
# 2000 small ones beside it, took more than the default 30 s)
my $s = send_post('/huge/big', $huge);
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
ok(length($a->{content} // '') == length($huge)
    && $a->{content} eq $huge, '48 MB echo: the same bytes back')
    or diag('got ' . length($a->{content} // '') . ' bytes');
ok($small > 0, "small jobs were posted while the big one ran ($small)");
is($small_ok, $small, 'every small job meanwhile answered 200, its own');

# the result went over the 32 MB pub/sub limit: no subscriber dropped
is(subscriber_id(), $subscriber, 'the same subscriber connection as before');
is(reconnects(), $reconnects, 'nginx reconnected to redis no time');
unlike(slurp(nginx_error_log()), qr/connection lost|receives nothing/,
    'no lost redis connection in the error log');
$mon->catch_up(scaled(20));
my @ranges = grep { $_->[1] eq 'LINDEX' } @{ $mon->seen };
ok(@ranges >= 48 * 4, 'the result is read a slice per LINDEX ('
    . scalar(@ranges) . ')');
# the worker's side too: its completion script, its reads
$longest = $mon->longest_arg;
ok($longest <= $SLICE + 64,
    "48 MB echo: no argument longer than a slice ($longest)");
$mon->forget;

# ---- a 2 MB job goes the bulk way and back the small way
my $mid = '[' . join(',', (12345) x (2**20 / 3)) . ']';
$r = http('POST', '/jobs/echo', $mid);
is($r->{status}, 200, '2 MB echo: 200');
ok(($r->{content} // '') eq $mid, '2 MB echo: the same bytes back');

# ---- a chunked body in many small chunks (each its own buffer in nginx)
# is sent slice after slice without searching the buffers from the start
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

finish();
