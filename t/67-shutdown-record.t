#!/usr/bin/perl
# A job whose worker a stop kills (it outlived shutdown_timeout) goes back
# to its queue, and its record says so: queued, not running with nothing
# running it.  A cancel then takes it (not 409 "the job is running"), and
# the next sidecar does not run it.  A sync job with an Idempotency-Key
# handed back so has a record that names its new entry: a read past its
# deadline finds it queued in the stream and says expired.  (Before: the
# record said running until its lifetime ran out, and a sync one queued
# for good.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $runs = "$dir/runs.log";
my $conf = "shutdown_timeout 300ms;\n"
    . "queue runs { handler exec; workers 1; "
    . "command \"/usr/bin/python3 $FindBin::Bin/exec/log_runs.py $runs\"; }\n";

start_redis();
start_sidecar(conf => $conf);
start_nginx(workers => 1, http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/sync/([^/]+)$ {
        offload_pass $1;
        offload_idempotency_ttl 1m;
    }
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /jobs/ { offload_jobs; }
}
HTTP
ok(wait_nginx_ready('/sync/runs', '{"tag":"warm"}', 1), 'stack ready');

sub starts {
    my ($tag) = @_;
    my $log = slurp($runs);
    my $n = () = $log =~ /^start \Q$tag\E /mg;
    return $n;
}

# ---- an async job
my $r = post_json('/async/runs', '{"tag":"a","ms":5000}');
is($r->{status}, 202, 'an async job: 202');
my $id = $r->{json}{id} // '';
ok(wait_until(sub { async_job_status($id) eq 'running' }, scaled(10),
    'running'), 'it runs');
stop_sidecar();
is(async_job_status($id), 'queued', 'its worker killed by the stop, its '
    . 'record says queued again');
$r = http('DELETE', "/jobs/$id");
is($r->{status}, 200, 'a cancel takes it') or diag($r->{content});
is($r->{json}{status}, 'cancelled', 'cancelled');

# ---- a sync job with an Idempotency-Key, its deadline 1 s
my $s = send_post('/sync/runs', '{"tag":"s","ms":5000}',
    { 'Idempotency-Key' => 'k1', 'X-Offload-Timeout' => '1' });
start_sidecar(conf => $conf);
ok(wait_until(sub { starts('s') == 1 }, scaled(10), 's runs'),
    'a keyed sync job runs');
is(read_answer($s, scaled(10))->{status}, 504,
    'its client is answered 504 at its deadline');
my ($sid) = split ' ', redis_cmd('GET', 'offload:{runs}:idem:k1') // '';
stop_sidecar();

# the async job cancelled while queued never ran again
is(starts('a'), 1, 'the cancelled job did not run again');
is(redis_cmd('HGET', record_key($sid // ''), 'status'), 'queued',
    'the sync job\'s record says queued');
my $entry = redis_cmd('HGET', record_key($sid // ''), 'entry') // '';
my @in = @{ redis_cmd('XRANGE', 'offload:{runs}:jobs', $entry, $entry)
    || [] };
is(scalar @in, 1, 'and names its entry, back in the stream');
is(async_job_status($sid), 'expired', 'a read past its deadline says '
    . 'expired: it waits in the stream, not run in time');

finish();
