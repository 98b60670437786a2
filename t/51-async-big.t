#!/usr/bin/perl
# A big async result through the jobs endpoint, on a one-worker nginx: a
# result over 1 MB is a list of slices, read element by element on the bulk
# connection (as the sync path reads one), never joined inside Redis and
# sent whole on the command connection.  GET /jobs/<id> gives the result
# byte-exact and HEAD the same Content-Length; while it is read, small
# requests on the same worker (job reads and sync jobs on the command
# connection) keep answering: their longest wait stays far under the big
# read's time to its first byte (the old way held them all up behind it).
# A sync duplicate of an Idempotency-Key job with a big result answers it
# the same way.  OFFLOAD_BIG_MB (default 24) sets the result's size.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $MB = $ENV{OFFLOAD_BIG_MB} || 24;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
CONF
start_nginx(workers => 1, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    client_max_body_size 64m;
    location ~ ^/sync/([^/]+)$ { offload_pass $1; offload_timeout 60s; }
    location ~ ^/async/([^/]+)$ {
        offload_pass $1;
        offload_mode async;
        offload_timeout 60s;
    }
    location /jobs/ { offload_jobs; }
}
HTTP
ok(wait_nginx_ready('/sync/echo', '{}', 1), 'stack ready');

# Submits an async job and waits (on its record, not by reading its result)
# until it is done; returns its id.
sub done_job {
    my ($body, $name) = @_;
    my $r = http('POST', '/async/echo', $body);
    is($r->{status}, 202, "$name: 202") or diag($r->{content});
    my $id = ($r->{json} // {})->{id} // '';
    ok(wait_until(sub {
        (redis_cmd('HGET', record_key($id), 'status') // '') eq 'done'
    }, scaled(60), "$name done"), "$name: done");
    return $id;
}

# A GET (or another method) sent on a fresh connection, not read yet.
sub send_req {
    my ($method, $path, $head) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\n" . ($head // '') . "\r\n";
    return $s;
}

# The raw answer split: (status, headers as a lower-case hash, body).
sub split_answer {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () }
        split /\r\n/, $head // '';
    return ($status // 0, \%h, $body // '');
}

# A request's whole answer, split.
sub ask { split_answer(OffloadTest::read_raw(send_req(@_), scaled(60))) }

# A body whose bytes differ along its length (a shifted copy would show).
my $n = int($MB * 2**20 / 8);
my $payload = '{"data":"' . join('', map { sprintf '%07x,', $_ } 1 .. $n)
    . '"}';
my $big = done_job($payload, "a $MB MB echo");
is(redis_cmd('TYPE', "offload:{echo}:result:$big"), 'list',
    'its result is stored as a list');
my $small = done_job('{"small":1}', 'a small job');

# ---- GET of the big job while small requests keep coming
my $t0 = time;
my $s = send_req('GET', "/jobs/$big");
my $sel = IO::Select->new($s);
my ($count, $longest, $failed) = (0, 0, 0);
while (!$sel->can_read(0) && time - $t0 < scaled(60)) {
    my $r = $count % 2
        ? http('GET', "/jobs/$small")
        : http('POST', '/sync/echo', qq({"i":$count}));
    $failed++ unless $r->{status} == 200;
    $longest = $r->{ms} if $r->{ms} > $longest;
    $count++;
}
my $first = (time - $t0) * 1000;
my ($status, $h, $body) = split_answer(OffloadTest::read_raw($s, scaled(60)));
my $total = (time - $t0) * 1000;
diag(sprintf '%d MB result: first byte after %.0f ms, all after %.0f ms; '
    . '%d small requests meanwhile, the longest %.1f ms',
    $MB, $first, $total, $count, $longest);

is($status, 200, 'GET of the big job: 200');
is($h->{'content-length'}, length $body, 'Content-Length as sent');
my $want = "\"result_status\":200,\"result\":$payload}";
ok(length($body) > length($want)
    && substr($body, -length $want) eq $want,
    'the whole result, byte-exact, behind result_status 200')
    or diag('got ' . length($body) . ' bytes: ' . substr($body, 0, 300));
my $doc = json_decode(substr($body, 0, -length $want) . '"x":0}') // {};
is($doc->{id}, $big, 'the record: its id');
is($doc->{status}, 'done', 'the record: done');
ok($count >= 1, "small requests ran while it was read ($count)");
is($failed, 0, 'each of them 200');
# a small request takes a few ms; behind a whole-value read it waits
# almost until the big answer starts
ok($longest < $first / 4 || $longest < scaled(100),
    sprintf 'the longest small request (%.1f ms) far under the big read '
    . 'to its first byte (%.0f ms)', $longest, $first);

# ---- HEAD: the same headers, no body
($status, my $hh, my $none) = ask('HEAD', "/jobs/$big");
is($status, 200, 'HEAD: 200');
is($hh->{'content-length'}, length $body, 'HEAD: the same Content-Length');
is($none, '', 'HEAD: no body');

# ---- long poll of an ended job: the same answer at once
($status, undef, my $polled) = ask('GET', "/jobs/$big?wait=5");
is($status, 200, '?wait=5 of the ended big job: 200');
ok($polled eq $body, '?wait=5: the same bytes');

# Stages a job's result as a worker stages a big one: a list, its header
# line (status $code), then $body in 256 KB slices, for as long as it was.
sub stage_list {
    my ($id, $code, $body) = @_;
    my $key = "offload:{echo}:result:$id";
    my $ttl = redis_cmd('PTTL', $key);
    my $data = "OR1 $id $code 1 1 1 1\n$body";
    redis_cmd('DEL', $key);
    redis_cmd('RPUSH', $key, map { substr($data, $_ * 262144, 262144) }
        0 .. int((length($data) - 1) / 262144));
    redis_cmd('PEXPIRE', $key, $ttl > 0 ? $ttl : 600_000);
}

# ---- a failed job's big error: "error" as for a small one
my $failed_id = done_job('{"f":1}', 'a job to fail');
my $err = '{"error":{"code":"huge","message":"' . ('e' x (2 * 2**20))
    . '"}}';
stage_list($failed_id, 422, $err);
($status, undef, my $eb) = ask('GET', "/jobs/$failed_id");
is($status, 200, 'a big error result: 200');
my $we = '"result_status":422,' . substr($err, 1);
ok(substr($eb, -length $we) eq $we, 'its error object, byte-exact')
    or diag(substr($eb, 0, 300));

# ---- a sync duplicate of an Idempotency-Key job: the big result itself
# (a body over 1 MB takes no key: the first job's small result is replaced
# by a big one, as a worker would have staged it)
sub keyed {
    my $q = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $q "POST /sync/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Idempotency-Key: big-$$\r\nContent-Length: 7\r\n\r\n{\"k\":1}";
    return [ split_answer(OffloadTest::read_raw($q, scaled(60))) ];
}
my $first_sync = keyed();
is($first_sync->[0], 200, 'a sync job with an Idempotency-Key: 200');
my $kid = $first_sync->[1]{'x-offload-job-id'} // '';
my $mid = '"' . ('m' x (3 * 2**20)) . '"';
stage_list($kid, 201, $mid);
my $dup = keyed();
is($dup->[0], 201, "its duplicate: the first job's status");
is($dup->[1]{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
is($dup->[1]{'x-offload-job-id'}, $kid, "the first job's id");
ok($dup->[2] eq $mid, 'its 3 MB result, byte-exact')
    or diag('got ' . length($dup->[2]) . ' bytes: '
        . substr($dup->[2], 0, 200));

# ---- big results read at once, each by its own request: every answer is
# its own job's (the reads after a request's first shared serial 0: the
# elements went to whichever read the tree gave, answers of mixed bytes,
# hung requests, a worker crashed in the bulk link's queue)
my %mine = map {
    my $fill = $_ x (1100 * 1024);
    my $body = qq({"$_":"$fill"});
    (done_job($body, "a 1.1 MB echo of '$_'") => $body)
} 'a' .. 'd';
my $mixed = 0;
for my $round (1 .. 3) {
    my %asked = map { ($_ => send_req('GET', "/jobs/$_")) } keys %mine;
    for my $id (sort keys %asked) {
        my ($st, undef, $got) =
            split_answer(OffloadTest::read_raw($asked{$id}, scaled(60)));
        my $want = "\"result\":$mine{$id}}";
        $mixed++ unless $st == 200 && length($got) > length($want)
            && substr($got, -length $want) eq $want;
    }
}
is($mixed, 0, '4 big results read at once, 3 rounds: each answer its '
    . "own job's result");
unlike(slurp(nginx_error_log()), qr/exited on signal/,
    'no nginx worker crashed');

# nothing went wrong with nginx's connections to Redis
unlike(slurp(nginx_error_log()),
    qr/no reply in time|connection lost|receives nothing/,
    'no redis connection dropped');

finish();
