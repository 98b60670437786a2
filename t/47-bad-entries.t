#!/usr/bin/perl
# Malformed stream entries, written straight into a queue's stream, reach the
# real sidecar worker: it answers those it can answer (400 bad_job, 422 for
# a payload that is not JSON), drops those it cannot, never crashes, and
# goes on serving.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(workers => 1), 'stack ready');
my $pid = worker_pids()->{echo}[0];

my $stream = 'offload:{echo}:jobs';
my $far = int(time * 1000) + 60_000;
my $n = 0;

# A valid job's fields, with some replaced or removed (undef).
sub entry {
    my (%change) = @_;
    my $id = sprintf '%032x', ++$n;
    my %f = (v => 1, id => $id, payload => '{}', reply => 'offload:reply:t',
        deadline => $far, submitted => $far - 60_000, attempt => 1,
        rid => "r$n", %change);
    return ($f{id}, map { defined $f{$_} ? ($_ => $f{$_}) : () } sort keys %f);
}

sub fields_of {
    my (undef, @fields) = entry(@_);
    return \@fields;
}

sub result_of {
    my ($id) = @_;
    my $res;
    wait_until(sub {
        $res = redis_cmd('GET', "offload:{echo}:result:$id");
        defined $res && !ref $res;
    }, 10, "result of $id");
    return $res // '';
}

my @answered = (
    [ 'no version', { v => undef }, 400, qr/bad_job.*no version/ ],
    [ 'version 99', { v => 99 }, 400, qr/unsupported protocol version/ ],
    [ 'deadline not a number', { deadline => 'soon' }, 400, qr/deadline/ ],
    [ 'attempt 0', { attempt => 0 }, 400, qr/attempt/ ],
    [ 'no payload', { payload => undef }, 400, qr/missing field/ ],
    [ 'payload not JSON', { payload => '{"a":' }, 422, qr/handler_error/ ],
);
for my $case (@answered) {
    my ($name, $change, $status, $re) = @$case;
    my ($id, @fields) = entry(%$change);
    redis_cmd('XADD', $stream, '*', @fields);
    my $res = result_of($id);
    like($res, qr/^OR1 $id $status \d+ \d+ \d+ \d+\n/,
        "$name: answered $status");
    like($res, $re, "$name: says why");
}

# Entries with nowhere to send an answer are acked and deleted.  An id
# with a NUL byte would otherwise be cut there in the result key and the
# answer header, and answer for another job (found by t/fuzz/result_decode).
my $victim = sprintf '%032x', 999_999;
my @dropped = (
    [ 'unknown fields only', [ 'foo', 'bar' ] ],
    [ 'id with a space', fields_of(id => 'a b') ],
    [ 'id with a NUL byte', fields_of(id => "$victim\0x") ],
    [ 'no reply channel', fields_of(reply => undef) ],
);
for my $case (@dropped) {
    my ($name, $fields) = @$case;
    redis_cmd('XADD', $stream, '*', @$fields);
}
ok(wait_until(sub {
    redis_cmd('XLEN', $stream) == 0 && pending_jobs('echo') == 0;
}, 10, 'stream drained'), 'every bad entry left the stream, none pending');

is(redis_cmd('GET', "offload:{echo}:result:$victim"), undef,
    'an id with a NUL byte answered for no other job');
is(worker_pids()->{echo}[0], $pid, 'the worker never restarted');
my $r = post_json('/jobs/echo', { after => 'bad entries' });
is($r->{status}, 200, 'and still serves jobs');
is_deeply($r->{json}, { after => 'bad entries' }, 'with the right answer');
like(slurp(tmpdir() . '/sidecar.log'), qr/bad job in entry/,
    'the sidecar logged the bad entries');

finish();
