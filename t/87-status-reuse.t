#!/usr/bin/perl
# Each nginx worker keeps its last default status and metrics answer whole
# and answers it again for 100 ms while the Redis part is the same refresh:
# a counter that changed within that time does not show (the same bytes,
# plain or gzip'd, from /status and the dashboard's ?status alike), and
# shows once the answer is older, with Redis' part unchanged (a 1 h
# refresh interval).  A HEAD spends no deflate: before the first gzip'd GET
# it says gzip without a length, after it the GET's length.  The answers
# carry no validators: a conditional request gets the whole answer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IO::Uncompress::Gunzip qw(gunzip);
use OffloadTest;

start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
start_nginx(workers => 1, level => 'info', http => <<'HTTP');
offload_status_cache 4m 1h;
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location = /status { offload_status; }
    location = /metrics { offload_metrics; }
    location = /dash { offload_dashboard; }
    location ~ ^/jobs/(.+)$ { offload_pass $1; }
}
HTTP

my $REUSE = 0.1;

sub get {
    my ($path, $ae, $method) = @_;
    return http($method // 'GET', $path, undef,
        defined $ae ? { 'accept-encoding' => $ae } : undef);
}

sub deflates {
    my @l = slurp(nginx_error_log())
        =~ /answer's nodes part of this refresh gzip'd/g;
    return scalar @l;
}

# requests answered 404 unknown_queue, as this nginx counts them
sub counted {
    my ($path, $body) = @_;
    if ($path eq '/metrics') {
        return ($body =~ /^offload_invalid_requests_total\{status="404"\}
                          \s(\d+)$/mx)[0] // 0;
    }
    return ($body =~ /"invalid_requests":\{[^}]*"404":(\d+)/)[0] // 0;
}

sub not_found { http('POST', '/jobs/nobody_serves_this', '{}')->{status} }

ok(wait_until(sub { (get('/status')->{json}{redis} // '') eq 'ok' },
    scaled(10), 'status ok'), 'status reads the nodes');

# ---- HEAD before any gzip'd GET: no deflate, no length
{
    my $head = get('/status', 'gzip', 'HEAD');
    is($head->{status}, 200, 'HEAD gzip: 200');
    is($head->{headers}{'content-encoding'}, 'gzip',
        'HEAD gzip: Content-Encoding: gzip, as a GET would');
    is($head->{headers}{'content-length'}, undef,
        'HEAD gzip: no Content-Length before the deflate was done');
    is($head->{content} // '', '', 'HEAD: no body');
    is(get('/metrics', 'gzip', 'HEAD')->{headers}{'content-encoding'},
        'gzip', 'HEAD /metrics gzip: Content-Encoding: gzip');
    is(deflates(), 0, 'HEAD spent no deflate');
    my $gz = get('/status', 'gzip');
    is(deflates(), 1, 'the first gzip\'d GET deflates');
    # (the same kept answer: within its age, tried again when this
    # machine was too slow for that)
    my ($tries, $length) = (0);
    while (!defined $length && $tries++ < 20) {
        my $start = time;
        $gz = get('/status', 'gzip');
        $head = get('/status', 'gzip', 'HEAD');
        $length = $head->{headers}{'content-length'}
            if time - $start < 0.8 * $REUSE;
    }
    is($length, length $gz->{content},
        "HEAD gzip after it: the GET's length ($tries tries)");
    $head = get('/status', undef, 'HEAD');
    ok($head->{headers}{'content-length'} > 1000
       && !exists $head->{headers}{'content-encoding'},
        'HEAD plain: the plain length');
    is(deflates(), 1, 'and no deflate more');
}

# ---- reuse within the age, the change after it
my $n404 = 0;

# the answer's text, gunzipped when it says gzip
sub text {
    my ($r) = @_;
    my $body = $r->{content} // '';
    return $body unless ($r->{headers}{'content-encoding'} // '') eq 'gzip';
    my $out;
    gunzip(\$body => \$out) or return '';
    return $out;
}

for my $path ('/status', '/metrics') {
    for my $ae (undef, 'gzip') {
        my $what = $path . ($ae ? ' gzip' : '');

        # a counted request, then a read that shows it (so made after it),
        # then another counted request and a read within the age of the
        # first: the same bytes, without the second (tried again when this
        # machine was too slow for that)
        my ($tries, $same, $fresh, $again, $t0) = (0, 0);
        while (!$same && $tries++ < 20) {
            is(not_found(), 404, "$what: a request counted") if $tries == 1;
            not_found() if $tries > 1;
            $n404++;
            wait_until(sub {
                $t0 = time;
                $fresh = get($path, $ae);
                counted($path, text($fresh)) == $n404;
            }, scaled(5), "$what shows the count") or last;
            not_found();
            $n404++;
            $again = get($path, $ae);
            next unless time - $t0 < 0.8 * $REUSE;
            $same = $again->{content} eq $fresh->{content}
                && counted($path, text($again)) == $n404 - 1;
            last;
        }
        ok($same, "$what: a read within ${REUSE}s of a fresh one is the "
            . "same bytes, the request counted since not in it ($tries "
            . "tries)");

        # after the age, the change shows: Redis' part is a 1 h refresh
        my $t1 = time;
        ok(wait_until(sub { counted($path, text(get($path, $ae))) == $n404 },
            scaled(5), "$what changes"), "$what: then the change shows");
        my $took = time - $t1;
        ok($took < scaled(1), sprintf('%s: within %.0f ms (%.0f ms + a '
            . 'poll)', $what, 1000 * $took, 1000 * $REUSE));
    }
}

# ---- the dashboard's ?status is the same kept answer
{
    my ($same, $tries) = (0, 0);
    while (!$same && $tries++ < 20) {
        my $start = time;
        my $a = get('/status');
        my $b = get('/dash?status');
        $same = $a->{content} eq $b->{content}
            if time - $start < 0.8 * $REUSE;
    }
    ok($same, "/dash?status within ${REUSE}s of /status: the same bytes");
}

# ---- no validators: a conditional request gets it all
{
    my $r = http('GET', '/status', undef, {
        'if-modified-since' => 'Thu, 01 Jan 2099 00:00:00 GMT',
        'if-none-match'     => '*' });
    is($r->{status}, 200, 'conditional GET: 200');
    ok(length($r->{content} // '') > 1000, 'with the whole answer');
    ok(!exists $r->{headers}{etag} && !exists $r->{headers}{'last-modified'},
        'no ETag nor Last-Modified to match');
}

done_testing();
