#!/usr/bin/perl
# An entry whose body key holds far less than the entry claims (written
# straight into Redis, as any program may), on a queue with memory_limit.
# A big body's buffer is made once for what all its elements can hold,
# but where memory_limit's cap on address space refuses that, it grows as
# the elements come: the read finds the body does not match its entry (a
# bad job, answered and dead-lettered), not a worker out of memory, and
# the worker goes on serving.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $SLICE = 262144;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 1; memory_limit 64m; }
CONF
ok(start_jobs_nginx(workers => 1), 'stack ready');
my $pid = worker_pids()->{echo}[0];

# 16 whole slices (4 MB: the buffer is then made for all elements), then
# 1,000 of one byte: room for 254 MB asked, more than the worker's cap
# (its size and twice memory_limit); the entry claims 400 MB
my $id = sprintf '%032x', 1;
my $key = "offload:{echo}:body:$id";
redis_cmd('RPUSH', $key, 'x' x $SLICE) for 1 .. 16;
redis_cmd('RPUSH', $key, ('y') x 1000);
my $far = int(time * 1000) + 60_000;
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 1, id => $id,
    payload => '', body => 400 << 20, reply => 'offload:reply:t',
    deadline => $far, submitted => $far - 60_000, attempt => 1,
    rid => 'claim');

my $res;
ok(wait_until(sub {
    $res = redis_cmd('GET', "offload:{echo}:result:$id");
    defined $res && !ref $res;
}, scaled(20), 'its answer'), 'the job is answered');
like($res // '', qr/bad_job/, '... as a bad job');
like($res // '', qr/does not match its entry/,
    '... whose body does not match its entry');
ok(wait_until(sub {
    redis_cmd('XLEN', 'offload:{echo}:dead') >= 1;
}, scaled(10), 'dead letter'), 'and dead-lettered');
unlike(slurp(tmpdir() . '/sidecar.log'), qr/no memory for the \d+-byte body/,
    'not taken for a lack of memory');

is(worker_pids()->{echo}[0], $pid, 'the same worker');
my $r = http('POST', '/jobs/echo', '{"after":1}');
is($r->{content}, '{"after":1}', 'serving the next job');

finish();
