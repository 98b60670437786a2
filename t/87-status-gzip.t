#!/usr/bin/perl
# offload_status and offload_metrics gzip'd: a client whose Accept-Encoding
# takes gzip gets the default answers as a gzip member (Content-Encoding:
# gzip, Vary: Accept-Encoding) that gunzips, with its CRC and length
# checked, to the plain answer of the same refresh; q=0 and a missing or
# other coding get the plain answer; "*" counts; ?full=1, sorted and
# limited answers stay plain.  The nodes part is deflated once per refresh
# in each worker (the info-level log line that says so is counted against
# the requests and the refreshes), and a refresh's change reaches the
# gzip'd answer.  This nginx's own part, in stored blocks, may be larger
# than one (64 KB).  With several Redis the default answers are gzip'd too,
# their Redis part deflated once while no Redis is refreshed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use Time::HiRes qw(time);
use POSIX ();
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 3; }
queue other { handler echo; workers 1; }
CONF

# one refresh for the whole first part: every answer of it is of the same
# generation
sub start_reports {
    my ($interval) = @_;
    start_nginx(workers => 2, level => 'info', http => <<"HTTP");
offload_status_cache 4m $interval;
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis \@REDIS\@;
    location = /status { offload_status; }
    location = /metrics { offload_metrics; }
    location = /dash { offload_dashboard; }
}
HTTP
}
start_reports('1h');

sub get {
    my ($path, $ae) = @_;
    return http('GET', $path, undef,
        defined $ae ? { 'accept-encoding' => $ae } : undef);
}

# the answer's body, gunzipped when it says gzip (undef when that fails)
sub text {
    my ($r) = @_;
    my $body = $r->{content} // '';
    return $body unless ($r->{headers}{'content-encoding'} // '') eq 'gzip';
    my $out;
    gunzip(\$body => \$out, Strict => 1) or return undef;
    return $out;
}

# a JSON answer but for what differs by request and by worker: the age of
# the cached read, the answering worker's pid
sub same_refresh {
    my $s = $_[0] // '';
    $s =~ s/"age_ms":\d+/"age_ms":0/g;
    $s =~ s/^\{"nginx":\{"pid":\d+/{"nginx":{"pid":0/;
    return $s;
}

sub gzip_lines {
    my ($what) = @_;
    my @l = slurp(nginx_error_log())
        =~ /the \Q$what\E answer's nodes part of this refresh gzip'd/g;
    return scalar @l;
}

ok(wait_until(sub { (get('/status')->{json}{redis} // '') eq 'ok' },
    scaled(10), 'status ok'), 'status reads the nodes');

# ---- the default JSON answer, gzip'd
# (the dashboard's page asks ?status&sort= until a column is clicked)
for my $path ('/status', '/dash?status', '/dash?status&sort=') {
    my $plain = get($path);
    my $gz = get($path, 'gzip, deflate, br');
    is($gz->{status}, 200, "$path gzip: 200");
    is($gz->{headers}{'content-encoding'}, 'gzip',
        "$path gzip: Content-Encoding: gzip");
    is($gz->{headers}{vary}, 'Accept-Encoding', "$path gzip: Vary");
    is($gz->{headers}{'content-length'}, length $gz->{content},
        "$path gzip: Content-Length is the gzip'd length");
    like($gz->{headers}{'content-type'}, qr{^application/json},
        "$path gzip: still JSON");
    my $text = text($gz);
    ok(defined $text, "$path gzip: gunzips (CRC and length checked)")
        or diag($GunzipError);
    is(same_refresh($text), same_refresh($plain->{content}),
        "$path gzip: the plain answer of the same refresh, byte for byte "
        . "(but for age_ms and the worker's pid)");
    ok(length $gz->{content} < length($plain->{content}) / 2,
        sprintf('%s: %d bytes gzip\'d, %d plain', $path,
            length $gz->{content}, length $plain->{content}));
    ok(!exists $plain->{headers}{'content-encoding'},
        "$path plain: no Content-Encoding");
    is($plain->{headers}{vary}, 'Accept-Encoding', "$path plain: Vary");
}
is(get('/status', 'gzip')->{json}, undef,
    'the gzip\'d body is not JSON as it is (it was compressed)');

# ---- the Prometheus text, gzip'd
{
    my $plain = get('/metrics');
    my $gz = get('/metrics', 'gzip');
    is($gz->{headers}{'content-encoding'}, 'gzip',
        '/metrics gzip: Content-Encoding: gzip');
    is($gz->{headers}{vary}, 'Accept-Encoding', '/metrics gzip: Vary');
    like($gz->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
        '/metrics gzip: still the exposition format');
    my $text = text($gz);
    ok(defined $text && $text =~ /^offload_worker_rss_bytes\{/m,
        '/metrics gzip: gunzips to the samples');
    is($text, $plain->{content},
        '/metrics gzip: the plain text of the same refresh, byte for byte');
}

# ---- Accept-Encoding, parsed
my %cases = (
    'gzip'                      => 1,
    'GZIP'                      => 1,
    'x-gzip'                    => 1,
    'deflate, gzip;q=0.5'       => 1,
    'gzip ; q=1.000'            => 1,
    'gzip;q=0.001'              => 1,
    '*'                         => 1,
    'br, *;q=0.1'               => 1,
    'gzip;q=0'                  => 0,
    'gzip; q=0.000'             => 0,
    'gzip;q=0, *'               => 0,
    '*;q=0'                     => 0,
    'identity'                  => 0,
    'deflate, br'               => 0,
    'gzipped'                   => 0,
    'gzip;q=2'                  => 0,
    'gzip;q=0.5x'               => 0,
    ''                          => 0,
);
for my $ae (sort keys %cases) {
    my $r = get('/status', $ae);
    my $gz = ($r->{headers}{'content-encoding'} // '') eq 'gzip';
    is($gz ? 1 : 0, $cases{$ae},
        "Accept-Encoding \"$ae\": " . ($cases{$ae} ? 'gzip' : 'plain'));
    ok($gz ? defined text($r) : defined $r->{json},
        "Accept-Encoding \"$ae\": the body reads");
}

# ---- the answers assembled per request stay plain
for my $path ('/status?full=1', '/status?sort=memory', '/status?limit=2',
              '/dash?status&sort=cpu')
{
    my $r = get($path, 'gzip');
    is($r->{status}, 200, "$path: 200");
    ok(!exists $r->{headers}{'content-encoding'}, "$path: plain");
    ok(!exists $r->{headers}{vary}, "$path: no Vary (it is one answer)");
    ok(defined $r->{json} && $r->{json}{workers_total} == 4,
        "$path: its JSON");
}
is(scalar @{ get('/status?limit=2', 'gzip')->{json}{workers} }, 2,
    '?limit=2 still limits');
is(ref get('/status?full=1', 'gzip')->{json}{nodes}[0]{queues}{echo}
    {workers}, 'ARRAY', '?full=1 still has the queues\' workers');

# ---- HEAD: the gzip'd answer's headers, no body, a length only once a
# GET made the gzip'd parts of the answering worker's kept answer (to the
# byte in t/87-status-reuse.t, with one worker)
{
    my $r = http('HEAD', '/status', undef, { 'accept-encoding' => 'gzip' });
    is($r->{status}, 200, 'HEAD: 200');
    is($r->{headers}{'content-encoding'}, 'gzip', 'HEAD: gzip');
    my $cl = $r->{headers}{'content-length'};
    ok(!defined $cl
       || ($cl > 0 && $cl < length(get('/status')->{content}) / 2),
        "HEAD: none or the gzip'd answer's length (" . ($cl // 'none')
        . ')');
    is($r->{content} // '', '', 'HEAD: no body');
}

# ---- once per refresh: many gzip'd answers, one deflate per worker
my $n = 0;
for (1 .. 40) {
    $n++ if defined text(get($_ % 2 ? '/status' : '/metrics', 'gzip'));
}
is($n, 40, 'forty more gzip\'d answers, all read');
my ($json, $prom) = (gzip_lines('JSON'), gzip_lines('Prometheus'));
ok($json >= 1 && $json <= 2,
    "the JSON nodes part deflated $json time(s) for one refresh in two "
    . 'workers');
ok($prom >= 1 && $prom <= 2,
    "the Prometheus part deflated $prom time(s) for one refresh in two "
    . 'workers');

# ---- each refresh: deflated again, once per worker, and its change is in
# the gzip'd answer
stop_nginx();
start_reports('1s');

sub reads {
    my $info = redis_cmd('INFO', 'commandstats') // '';
    my $k = 0;
    $k += $1 while $info =~ /^cmdstat_(?:evalsha_ro|eval_ro):calls=(\d+)/mg;
    return $k;
}

ok(wait_until(sub { defined text(get('/status', 'gzip')) }, scaled(10),
    'gzip status'), 'gzip\'d status with a 1 s interval');
my $doc = '{"node":"gzip-probe","pid":1,"heartbeat":1,"queues":'
    . '{"probe":{"state":"ok","workers":[]}}}';
redis_cmd('SET', 'offload:{ctl}:node:gzip-probe', $doc);
redis_cmd('SADD', 'offload:{ctl}:nodes', 'gzip-probe');
ok(wait_until(sub {
    my $j = json_decode(text(get('/status', 'gzip')) // '');
    $j && $j->{queues}{probe};
}, scaled(5), 'probe in the gzip\'d answer'),
    'a node that appears is in the gzip\'d answer after the refresh');
redis_cmd('SREM', 'offload:{ctl}:nodes', 'gzip-probe');
redis_cmd('DEL', 'offload:{ctl}:node:gzip-probe');

my $secs = 3;
my ($lines0, $reads0) = (gzip_lines('JSON'), reads());
my $t0 = time;
my @kids;
for my $k (1 .. 2) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my ($m, $bad) = (0, 0);
        while (time - $t0 < $secs) {
            $bad++ unless defined json_decode(text(get('/status', 'gzip'))
                // '');
            $m++;
        }
        spew(tmpdir() . "/client$k", "$m $bad");
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my ($total, $bad) = (0, 0);
for my $k (1 .. 2) {
    my ($m, $b) = split ' ', slurp(tmpdir() . "/client$k");
    $total += $m;
    $bad += $b;
}
my ($lines, $refreshes) = (gzip_lines('JSON') - $lines0, reads() - $reads0);
diag(sprintf '%d gzip\'d answers in %.1f s: %d refreshes, %d deflates',
    $total, time - $t0, $refreshes, $lines);
is($bad, 0, 'every gzip\'d answer gunzips to JSON');
ok($total >= 4 * ($lines || 1),
    "$total answers for $lines deflates: not one a request");
ok($lines >= 1, 'the nodes part was deflated again for a new refresh');
ok($lines <= 2 * ($refreshes + 1),
    "at most once per refresh in each of the two workers ($lines for "
    . "$refreshes refreshes)");

# ---- a head larger than a stored block (64 KB): this nginx's figures of
# 16 queues that had requests
stop_nginx();
stop_sidecar();
start_sidecar(conf => join '',
    map { "queue q$_ { handler echo; workers 1; }\n" } 1 .. 16);
start_nginx(workers => 1, level => 'info', http => <<'HTTP');
offload_status_cache 4m 1h;
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
    location = /metrics { offload_metrics; }
}
HTTP
ok(wait_until(sub { post_json('/jobs/q16', {})->{status} == 200 },
    scaled(20), 'q16 answers'), 'sixteen queues served');
is(post_json("/jobs/q$_", {})->{status}, 200, "a job on q$_") for 1 .. 15;
{
    my $plain = get('/metrics');
    my $gz = get('/metrics', 'gzip');
    my ($head) = $plain->{content} =~ /^(.*^offload_redis_up [01]\n)/ms;
    ok(length($head // '') > 65535,
        sprintf('this nginx\'s part of the text: %d bytes',
            length($head // '')));
    is($gz->{headers}{'content-encoding'}, 'gzip', 'gzip\'d');
    is(text($gz), $plain->{content},
        'it gunzips to the plain text, byte for byte');
}
# ---- several Redis: the default answers gzip'd as well, the Redis part
# of all of them deflated once while none of them is refreshed
stop_nginx();
my $pb = free_port();
mkdir tmpdir() . '/b';
spawn('redis-b', tmpdir() . '/b/redis.log', {}, 'redis-server', '--port',
    $pb, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', tmpdir() . '/b', '--daemonize', 'no');
ok(wait_until(sub { (redis_cmd_at($pb, 'PING') // '') eq 'PONG' },
    scaled(10), 'second redis-server'), 'a second Redis');
start_nginx(workers => 1, level => 'info', http => <<"HTTP");
offload_status_cache 4m 1h;
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis \@REDIS\@;
    location = /status { offload_status; }
    location = /metrics { offload_metrics; }
    location = /b/beta { offload_redis 127.0.0.1:$pb; offload_pass beta; }
}
HTTP
ok(wait_until(sub {
    my $s = get('/status')->{json} || {};
    @{ $s->{redises} || [] } == 2 && ($s->{redis} // '') eq 'ok' },
    scaled(10), 'both Redis read'), 'status reads both Redis');
{
    my $before = gzip_lines('JSON');
    my $plain = get('/status');
    my $gz = get('/status', 'gzip');
    is($gz->{headers}{'content-encoding'}, 'gzip',
        'several Redis, /status gzip: Content-Encoding: gzip');
    is($gz->{headers}{'content-length'}, length $gz->{content},
        'several Redis, /status gzip: its length');
    is(same_refresh(text($gz)), same_refresh($plain->{content}),
        'several Redis, /status gzip: gunzips to the plain answer');
    ok(length $gz->{content} < length($plain->{content}) / 2,
        sprintf('several Redis: %d bytes gzip\'d, %d plain',
            length $gz->{content}, length $plain->{content}));
    is($plain->{headers}{vary}, 'Accept-Encoding', 'several Redis: Vary');
    is(scalar(@{ ($plain->{json} || {})->{redises} || [] }), 2,
        'several Redis: both listed');
    get('/status', 'gzip') for 1 .. 20;
    is(gzip_lines('JSON') - $before, 1,
        'several Redis: 21 gzip\'d answers, one deflate');
    like(get('/status?sort=cpu', 'gzip')->{content}, qr/^\{/,
        'several Redis, sorted: plain');

    my $mplain = get('/metrics');
    my $mgz = get('/metrics', 'gzip');
    is($mgz->{headers}{'content-encoding'}, 'gzip',
        'several Redis, /metrics gzip: Content-Encoding: gzip');
    like($mplain->{content}, qr/^offload_redis_up\{redis="[^"]+"\} 1$/m,
        'several Redis, /metrics: labelled by Redis');
    is(text($mgz), $mplain->{content},
        'several Redis, /metrics gzip: gunzips to the plain text');
}

unlike(slurp(nginx_error_log()), qr/\[(?:alert|emerg|crit)\]|exited on/,
    'nothing alarming in the error log');

done_testing();
