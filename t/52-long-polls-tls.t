#!/usr/bin/perl
# Long polls over TLS are parked without their nginx request too
# (ngx_http_offload_poll.c): curl's keep-alive poll over HTTPS holds no
# request while its job runs, is answered when the job ends, and its TLS
# connection then serves curl's next request; a TLS client that leaves a
# parked poll gets it logged 499.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
tls_cert();

my $tls = free_port();
start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 2; }
CONF
start_nginx(workers => 1, level => 'info', http => <<"HTTP");
log_format polls '\$request_uri \$status \$request_time';
server {
    listen 127.0.0.1:\@PORT\@;
    listen 127.0.0.1:$tls ssl;
    ssl_certificate \@DIR\@/cert.pem;
    ssl_certificate_key \@DIR\@/key.pem;
    offload_redis \@REDIS\@;
    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location /jobs/ {
        offload_jobs;
        access_log \@DIR\@/polls.log polls;
    }
    location = /nginx_status { stub_status; }
}
HTTP
ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1), 'stack ready');

# parked: its record read and no request held while job $id still runs
sub parked {
    my ($calls, $id) = @_;
    return wait_until(sub {
        evalsha_calls() > $calls && nginx_writing() == 1;
    }, scaled(10), 'the TLS poll parked')
        && async_job_status($id) eq 'running';
}

# curl in the background on one TLS connection: each URL's body, then
# "=<status> <connections made>"
sub curl {
    my (@urls) = @_;
    my @cmd = (qw(curl -sk --http1.1 --max-time 30),
        map { ('-w', '\n=%{http_code} %{num_connects}\n',
               "https://127.0.0.1:$tls$_") } @urls);
    my $pid = open(my $fh, '-|', @cmd) or die "curl: $!";
    return ($pid, $fh);
}

# -- parked, answered, and the connection goes on ----------------------------
my $id = running_sleep_job(2500);
my $calls = evalsha_calls();
my ($pid, $fh) = curl("/jobs/$id?wait=30", "/jobs/$id");
ok(parked($calls, $id),
    'a keep-alive poll over TLS holds no request while its job runs');
my $out = do { local $/; <$fh> };
close $fh;
my @answers = $out =~ /^(\{.*?\})\n=(\d+) (\d+)$/mg;
is(scalar(@answers), 6, 'curl got two answers') or diag($out);
my ($poll, $code, $made, $next, $code2, $made2) = @answers;
is($code, 200, 'the job ends: the poll answers 200');
is((json_decode($poll) // {})->{status}, 'done', 'status done');
is($code2, 200, 'the next request on the connection: 200');
is($made2, 0, 'on the same TLS connection');
is((json_decode($next) // {})->{status}, 'done', 'which reads the job');

# -- a TLS client leaves its parked poll -------------------------------------
$id = running_sleep_job(20000);
$calls = evalsha_calls();
($pid, $fh) = curl("/jobs/$id?wait=30");
ok(parked($calls, $id), 'another TLS poll parks');
kill 'TERM', $pid;
close $fh;
ok(wait_until(sub {
    slurp(nginx_error_log())
        =~ /client prematurely closed connection, poll of job $id/;
}, scaled(10), 'the close noticed'), 'its client leaves: noticed');
ok(wait_until(sub {
    slurp("$dir/polls.log") =~ m{^/jobs/$id\?wait=30 499 }m;
}, scaled(5), 'logged 499'), 'and the poll logged 499');

unlike(slurp(nginx_error_log()), qr/\[(alert|crit|emerg)\]/,
    'no alert in the error log');

stop_all();
done_testing();
