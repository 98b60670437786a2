#!/usr/bin/perl
# A big result (a list, over 1 MB) of a sync job is deleted by nginx once
# it has read it: its request is its one reader, and it would otherwise
# hold megabytes of Redis for result_ttl (60 s).  A small result, a big
# one of a job with an Idempotency-Key (its duplicates read it) and an
# async job's (its record's reads) are kept.  A Redis whose ACL refuses
# that UNLINK (rules from before it) keeps them, said once in a warning.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $inflate = "/usr/bin/python3 $FindBin::Bin/exec/inflate.py";

start_redis();
start_sidecar(conf => <<"CONF");
queue echo { handler echo; workers 1; }
queue inflate { handler exec; command "$inflate"; workers 1; }
CONF
start_jobs_nginx(server => <<'CONF') or give_up('stack did not start');
    client_max_body_size 8m;
    offload_jobs_url /job/;
    location ~ ^/async/([^/]+)$ { offload_pass $1; offload_mode async; }
    location /job/ { offload_jobs; }
CONF

sub result_key { "offload:{$_[0]}:result:$_[1]" }

# ---- a sync job's big result: gone once answered
my $big = '"' . ('b' x (3 * 2**20)) . '"';
my $r = http('POST', '/jobs/echo', $big);
is($r->{status}, 200, 'a 3 MB echo: 200');
ok(($r->{content} // '') eq $big, 'a 3 MB echo: its bytes back');
my $id = $r->{headers}{'x-offload-job-id'} // '';
ok(wait_until(sub { redis_cmd('EXISTS', result_key('echo', $id)) eq '0' },
    scaled(5), 'the big result deleted'),
    'its result key deleted once read, not kept result_ttl');

# ---- a small result: kept, as before
$r = post_json('/jobs/echo', { small => 1 });
is($r->{status}, 200, 'a small echo: 200');
$id = $r->{headers}{'x-offload-job-id'} // '';
cmp_ok(redis_cmd('PTTL', result_key('echo', $id)), '>', 50_000,
    'a small result is kept result_ttl');

# ---- a big result of a job with an Idempotency-Key: its duplicates read it
my $key = { 'Idempotency-Key' => 'freed-1' };
my $body = '{"bytes":2000000}';
$r = http('POST', '/jobs/inflate', $body, $key);
is($r->{status}, 200, 'a keyed job with a 2 MB result: 200');
is(length($r->{json}{data} // ''), 2_000_000, 'its 2 MB result');
$id = $r->{headers}{'x-offload-job-id'} // '';
my $dup = http('POST', '/jobs/inflate', $body, $key);
is($dup->{status}, 200, 'its duplicate: 200');
is($dup->{headers}{'idempotent-replayed'}, 'true', 'its duplicate: replayed');
ok(($dup->{content} // '') eq $r->{content},
    "its duplicate: the first's result");
is(redis_cmd('EXISTS', result_key('inflate', $id)), 1,
    'a keyed job keeps its big result');

# ---- an async job's big result: its record's reads need it
$r = http('POST', '/async/echo', $big);
is($r->{status}, 202, 'a 3 MB async echo: 202');
$id = $r->{json}{id} // '';
for my $n (1, 2) {
    my $get = http('GET', "/job/$id?wait=10");
    is($get->{json}{status}, 'done', "async: read $n, done");
    ok(ref $get->{json}{result} eq '' && ($get->{json}{result} // '')
        eq substr($big, 1, -1), "async: read $n, its result");
}
is(redis_cmd('EXISTS', result_key('echo', $id)), 1,
    'an async job keeps its big result');

is_deeply([ grep { /\[(?:error|crit|alert|emerg)\]/ }
    split /\n/, slurp(nginx_error_log()) ], [], 'nginx logged no error');

# ---- nginx as a user that may not UNLINK results
stop_nginx();
redis_cmd('ACL', 'SETUSER', 'keeper', 'on', '>keeper-secret', '+@all', '~*',
    '&*', '-unlink', '(+unlink ~offload:{*}:body:*)');
# one worker: each worker learns it for itself
start_jobs_nginx(workers => 1,
    redis => '@REDIS@ user=keeper password=keeper-secret',
    server => 'client_max_body_size 8m;') or give_up('nginx did not start');
my @ids;
for my $n (1, 2) {
    $r = http('POST', '/jobs/echo', $big);
    is($r->{status}, 200, "UNLINK refused, a 3 MB echo $n: 200");
    push @ids, $r->{headers}{'x-offload-job-id'} // '';
}
my $warned = qr/refused the UNLINK of a big result read .*\Q(+unlink ~offload:{*}:result:*)\E/;
ok(wait_until(sub { slurp(nginx_error_log()) =~ $warned }, scaled(5),
    'the warning'), 'UNLINK refused: a warning names the rule');
my @lines = split /\n/, slurp(nginx_error_log());
is(scalar(grep { /$warned/ } @lines), 1, 'UNLINK refused: said once');
is_deeply([ grep { /\[(?:error|crit|alert|emerg)\]/ } @lines ], [],
    'UNLINK refused: no error logged');
is(redis_cmd('EXISTS', map { result_key('echo', $_) } @ids), 2,
    'UNLINK refused: the big results stay their result_ttl');

done_testing();
