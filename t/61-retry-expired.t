#!/usr/bin/perl
# A job with an Idempotency-Key that failed for now, then expired before
# its next attempt ran (its node drained meanwhile): the worker that finds
# it expired, and so its duplicate, do not say "before a worker took it"
# (never ran, safe to submit again): an earlier run did not end it, and
# may have done part of its work.  (The unrun case keeps its words:
# t/52-idempotency.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue fu { handler fail_until; workers 1; max_attempts 3;
           retry_backoff 1s 1s; }
CONF
start_server_nginx(server => <<'SERVER');
    location ~ ^/sync/([^/]+)$ { offload_pass $1; offload_timeout 3s; }
SERVER

sub post_key {
    my ($key, $body) = @_;
    return send_post('/sync/fu', $body, { 'Idempotency-Key' => $key });
}

my $body = '{"attempt_ok":3}';
my $s = post_key('k1', $body);
my $rec;
ok(wait_until(sub {
    my @k = @{ redis_cmd('KEYS', 'offload:job:*') };
    $rec = $k[0];
    $rec && (redis_cmd('HGET', $rec, 'status') // '') eq 'retrying' },
    scaled(5), 'retrying'), 'the job failed for now: retrying');
# its next attempt must not run: the node drained before it is due
my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl drain -t 0 ${\ node_name()} 2>&1`;
ok(wait_until(sub { (node_doc() // {})->{drained} }, scaled(2), 'drained'),
    'the node drained') or diag($out);
my $a = read_answer($s, scaled(10));
is($a->{status}, 504, 'its client: 504 timeout at the deadline')
    or diag($a->{content});
ok(redis_cmd('HGET', $rec, 'attempts') >= 1, 'an attempt made, or two');

# resumed (nginx answers a drained queue no_workers before it looks for
# a duplicate): the worker finds the job expired
`$ctl resume -t 0 ${\ node_name()} 2>&1`;
ok(wait_until(sub { (redis_cmd('HGET', $rec, 'status') // '') eq 'expired' },
    scaled(5), 'expired'), 'the job expired');
# (503 no_workers until nginx reads the registry again: nothing made)
my $dup;
wait_until(sub { $dup = read_answer(post_key('k1', $body), scaled(10));
    $dup->{status} != 503 }, scaled(5), 'nginx sees the node resumed');
is($dup->{status}, 504, 'its duplicate: 504');
is($dup->{json} && $dup->{json}{error}{code}, 'expired', 'expired');
like($dup->{json} && $dup->{json}{error}{message} // '',
    qr/before the job could run again: an earlier run did not end it/,
    'not "before a worker took it": it ran') or diag($dup->{content});

finish();
