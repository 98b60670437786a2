#!/usr/bin/perl
# Malformed stream entries, written straight into a queue's stream, reach the
# real sidecar worker: each that is not a job goes to the queue's dead-letter
# stream (reason bad_job, its own fields), those it can answer are answered
# too (400 bad_job; 422 for a payload that is not JSON, which is a job), it
# never crashes, and goes on serving.

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

my @answered = (
    [ 'no version', { v => undef }, 400, qr/bad_job.*no version/ ],
    [ 'version 99', { v => 99 }, 400, qr/unsupported protocol version/ ],
    [ 'deadline not a number', { deadline => 'soon' }, 400, qr/deadline/ ],
    [ 'deadline in seconds', { deadline => int($far / 1000) }, 400,
      qr/bad deadline: before 2001, in seconds\?/ ],
    [ 'attempt 0', { attempt => 0 }, 400, qr/attempt/ ],
    [ 'no payload', { payload => undef }, 400, qr/missing field/ ],
    [ 'payload not JSON', { payload => '{"a":' }, 422, qr/handler_error/ ],
    # a channel the sidecar's ACL user may not publish to (NOPERM): the
    # job ran, then its completion was refused for seconds before the
    # worker gave up; the answer is stored, not published
    [ 'reply channel of nobody\'s', { reply => 'nope:1' }, 400,
      qr/bad reply channel: not offload:reply:/ ],
    [ 'reply channel without a tag', { reply => 'offload:{}:reply:x' }, 400,
      qr/bad reply channel/ ],
);
for my $case (@answered) {
    my ($name, $change, $status, $re) = @$case;
    my ($id, @fields) = entry(%$change);
    redis_cmd('XADD', $stream, '*', @fields);
    my $res = stored_result('echo', $id);
    like($res, qr/^OR1 $id $status \d+ \d+ \d+ \d+\n/,
        "$name: answered $status");
    like($res, $re, "$name: says why");
}

# Entries with no usable id to answer by, as a program that writes to Redis
# itself may leave them.  An id with a NUL byte would otherwise be cut
# there in the result key and the answer header, and answer for another
# job (found by t/fuzz/result_decode).
my $victim = sprintf '%032x', 999_999;
my @unanswerable = (
    [ 'unknown fields only', [ 'foo', 'bar' ] ],
    [ 'only a payload', [ 'payload', '{"direct":1}' ] ],
    [ 'id with a space', fields_of(id => 'a b') ],
    [ 'id with a NUL byte', fields_of(id => "$victim\0x") ],
    [ 'fields named like the dead letter\'s own',
      [ 'reason', 'forged', 'entry', '0-1', 'payload', '{}' ] ],
);
for my $case (@unanswerable) {
    my ($name, $fields) = @$case;
    redis_cmd('XADD', $stream, '*', @$fields);
}
ok(wait_until(sub {
    redis_cmd('XLEN', $stream) == 0 && pending_jobs('echo') == 0;
}, 10, 'stream drained'), 'every bad entry left the stream, none pending');

# every entry that was not a job is a dead letter: 8 answered, 5 not
my $dead;
ok(wait_until(sub {
    $dead = stream_entries('offload:{echo}:dead');
    @$dead == 13;
}, 10, 'dead letters'), 'thirteen dead letters, one per bad entry')
    or diag(explain($dead));
is(scalar(grep { ($_->{reason} // '') eq 'bad_job' } @$dead), 13,
    'each with reason bad_job');
ok(!grep({ !json_decode($_->{report} // '') } @$dead),
    'and a JSON report');
my ($direct) = grep { ($_->{payload} // '') eq '{"direct":1}' } @$dead;
ok($direct && $direct->{entry} && $direct->{dead_at},
    'an entry with only a payload keeps it, with its entry id and time');
like(json_decode($direct->{report} // '{}')->{message} // '',
    qr/no version/, 'its report says why');
my ($forged) = grep { !defined $_->{v} && ($_->{payload} // '') eq '{}' }
    @$dead;
ok($forged && $forged->{reason} eq 'bad_job' && $forged->{entry} ne '0-1',
    'fields named like the dead letter\'s own do not override them');

my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $out = `$ctl dead echo 2>&1`;
is($? >> 8, 0, 'offloadctl dead: exit 0');
is(scalar(() = $out =~ /\bbad_job\b/g), 13,
    'offloadctl dead shows all thirteen')
    or diag($out);

is(redis_cmd('GET', "offload:{echo}:result:$victim"), undef,
    'an id with a NUL byte answered for no other job');

# No reply channel is no longer a bad entry: it is a job submitted "fire
# and forget" (t/46-submit.t), run and its result stored.
my ($forget, @fields) = entry(reply => undef);
redis_cmd('XADD', $stream, '*', @fields);
# an empty one too (PROTOCOL.md: absent or empty)
my ($empty, @empty) = entry(reply => '');
redis_cmd('XADD', $stream, '*', @empty);
like(stored_result('echo', $empty),
    qr/^OR1 $empty 200 \d+ \d+ \d+ \d+\n\{\}\z/,
    'an entry with an empty reply channel runs, its result stored');
like(stored_result('echo', $forget),
    qr/^OR1 $forget 200 \d+ \d+ \d+ \d+\n\{\}\z/,
    'an entry without a reply channel runs, its result stored');
is(scalar @{ stream_entries('offload:{echo}:dead') }, 13,
    'and is no dead letter');
# a cluster's reply channel, in the queue's own slot, is a job's
my ($sharded, @sharded) = entry(reply => 'offload:{echo}:reply:t');
redis_cmd('XADD', $stream, '*', @sharded);
like(stored_result('echo', $sharded),
    qr/^OR1 $sharded 200 \d+ \d+ \d+ \d+\n\{\}\z/,
    'an entry replying on offload:{echo}:reply:<nonce> runs');

# An async job's entry (a record, "rec") whose id is not hex: a '}' in its
# slot tag (characters 12..16) makes a record key the scripts cannot read
# the id back from, and the completion's publish of the id failed, its
# entry run again and again.  Its record is made as the submit script
# would, so the job would end it.
my $braced = sprintf('%011x}%020x', 7, 7);
my $braced_rec = 'offload:job:{' . substr($braced, 11, 5) . "}:$braced";
redis_cmd('HSET', $braced_rec, 'queue', 'echo', 'status', 'queued',
    'attempts', 0);
redis_cmd('PEXPIRE', $braced_rec, 60_000);
redis_cmd('XADD', $stream, '*',
    @{ fields_of(id => $braced, reply => undef, rec => 60_000) });
like(stored_result('echo', $braced),
    qr/^OR1 \Q$braced\E 400 .*bad_job.*bad id/s,
    'an async entry with a } in its id: answered 400 bad_job');
ok(wait_until(sub {
    redis_cmd('XLEN', $stream) == 0 && pending_jobs('echo') == 0;
}, 10, 'stream drained'), 'and it left the stream, none pending');
my $braced_dead = [ grep { ($_->{id} // '') eq $braced }
    @{ stream_entries('offload:{echo}:dead') } ];
is(scalar @$braced_dead, 1, 'it is one dead letter');
is($braced_dead->[0]{reason}, 'bad_job', 'reason bad_job');
is(redis_cmd('HGET', $braced_rec, 'status'), 'queued',
    'it never ran: its record never started');
unlike(slurp(tmpdir() . '/sidecar.log'), qr/completing entry .* failed/,
    'no completion failed');

is(worker_pids()->{echo}[0], $pid, 'the worker never restarted');
my $r = post_json('/jobs/echo', { after => 'bad entries' });
is($r->{status}, 200, 'and still serves jobs');
is_deeply($r->{json}, { after => 'bad entries' }, 'with the right answer');
like(slurp(tmpdir() . '/sidecar.log'), qr/bad job in entry/,
    'the sidecar logged the bad entries');

finish();
