#!/usr/bin/perl
# Redis ACL users: the `default` user is off and the module and the sidecar
# each log in as their own user, defined by exactly the rules README.md
# documents (read from it).  Echo jobs, offload_status, offloadctl, a worker
# crash (dead letter), a worker killed under a job (requeue), a reload, a
# drain, and jobs submitted by offloadctl as offload-submitter all work,
# and Redis denied nothing: ACL LOG is empty and no log says NOPERM.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use AclRules;

my %rules = readme_acl_rules();
ok(%rules, 'README.md documents the ACL rules') or BAIL_OUT('no rules');
ok($rules{'offload-nginx'} && $rules{'offload-sidecar'}
    && $rules{'offload-submitter'},
    'rules for offload-nginx, offload-sidecar and offload-submitter');
my %secret = acl_secrets(%rules);

my @default = readme_acl_default();
is($default[0], 'off', 'README.md turns the default user off');
# AOF on, fsynced at every write: the restart at the end finds each one
my @redis = (user => 'admin', password => 'admin-secret', args => [
    '--appendonly', 'yes', '--appendfsync', 'always',
    '--user', 'default', @default,
    '--user', 'admin', 'on', '>admin-secret', '~*', '&*', '+@all',
    map { ('--user', $_, @{ $rules{$_} }) } sort keys %rules ]);
start_redis(@redis);
is(redis_cmd('ACL', 'WHOAMI'), 'admin', 'the test is admin');
my $anon = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => redis_port(), Proto => 'tcp', Timeout => 2);
syswrite $anon, "PING\r\n";
sysread $anon, my $denied, 512;
like($denied, qr/^-NOAUTH/, 'the default user is off');

start_sidecar(conf => <<"CONF");
redis_user offload-sidecar;
password $secret{'offload-sidecar'};
fault_handlers on;
queue echo { handler echo; workers 2; }
queue sleep { handler sleep; workers 1; }
queue crash { handler crash; workers 1; max_attempts 2; }
CONF
ok(start_jobs_nginx(
    redis => "\@REDIS\@ user=offload-nginx password=$secret{'offload-nginx'}",
    server => "offload_timeout 20s;\nclient_max_body_size 4m;\n"
        . "location = /status { offload_status; }\n"
        . "location /jobs-api/ { offload_jobs; }\n"
        . "location /stop-api/ { offload_jobs; offload_cancel_running on; }\n"
        . "offload_jobs_url /jobs-api/;\n"
        . 'location ~ ^/brief/([^/]+)$ { offload_pass $1; '
        . "offload_timeout 100ms; }\n"
        . 'location ~ ^/capped/([^/]+)$ { offload_pass $1; '
        . "offload_max_backlog 100; }"), 'stack ready');

my $ok = 0;
for my $i (1 .. 20) {
    my $r = post_json('/jobs/echo', { i => $i });
    $ok++ if $r->{status} == 200 && $r->{json}{i} == $i;
}
is($ok, 20, '20 echo jobs');

# offload_max_backlog: the admission script (EVALSHA, and EVAL after
# NOSCRIPT), and the registry read for no_workers (EVALSHA_RO)
redis_cmd('SCRIPT', 'FLUSH');
$ok = 0;
for my $i (1 .. 5) {
    $ok++ if post_json('/capped/echo', { i => $i })->{status} == 200;
}
is($ok, 5, '5 echo jobs through the admission script');
is(http('POST', '/capped/nosuch', '{}')->{status}, 404,
    'the admission script: an unknown queue is 404');

# an async job: its entry and record (a script), GET with a long poll
# woken by its end, a cancel that finds it finished
my $ar = http('POST', '/jobs/echo', '{"a":1}', { Prefer => 'respond-async' });
is($ar->{status}, 202, 'an async job: 202');
my $aid = $ar->{json}{id} // '';
$ar = http('GET', "/jobs-api/$aid?wait=10");
is($ar->{json}{status}, 'done', 'GET ?wait: done') or diag($ar->{content});
is_deeply($ar->{json}{result}, { a => 1 }, 'with its result');
is(http('DELETE', "/jobs-api/$aid")->{status}, 409, 'DELETE: 409');

# a sync job whose client goes away while it waits in the queue (the
# module's cancel script), dropped unrun by the worker (its drop script)
my $hold = send_post('/jobs/sleep', '{"ms":800}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(10), 'held'),
    'the sleep worker is busy');
my $gone = send_post('/jobs/sleep', '{"ms":1}');
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{sleep}:jobs') == 2 },
    scaled(10), 'queued'), 'a job queued behind it');
close $gone;
ok(wait_until(sub { redis_cmd('ZCARD', 'offload:{sleep}:cancelled') >= 1 },
    scaled(10), 'marked'), 'its client gone: marked as offload-nginx');
is(read_answer($hold)->{status}, 200, 'the busy job answered');
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0 },
    scaled(10), 'dropped'), 'the marked job dropped as offload-sidecar');

# a sync job with an Idempotency-Key still queued past its deadline: a
# read says expired (the job script's XRANGE and XPENDING of its entry, as
# offload-nginx)
$hold = send_post('/jobs/sleep', '{"ms":' . scaled(3000) . '}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(10), 'held'),
    'the sleep worker is busy again');
is(http('POST', '/brief/sleep', '{"ms":1}',
    { 'Idempotency-Key' => 'acl-expire' })->{status}, 504,
    'a keyed sync job no worker took in time: 504');
my ($kid) = (redis_cmd('GET', 'offload:{sleep}:idem:acl-expire') // '')
    =~ /^(\S+)/;
is(http('GET', '/jobs-api/' . ($kid // 'none'))->{json}{status}, 'expired',
    'read past its deadline: expired');
# and one that a submission of its key expires (the submit script's
# HGETALL, XRANGE, XPENDING, HSET and PUBLISH, as offload-nginx), making a
# new job
is(http('POST', '/brief/sleep', '{"ms":1}',
    { 'Idempotency-Key' => 'acl-retry' })->{status}, 504,
    'another keyed sync job no worker took in time: 504');
($kid) = (redis_cmd('GET', 'offload:{sleep}:idem:acl-retry') // '')
    =~ /^(\S+)/;
$ar = http('POST', '/jobs/sleep', '{"ms":1}',
    { 'Idempotency-Key' => 'acl-retry', Prefer => 'respond-async' });
is($ar->{status}, 202, 'its key again: 202');
isnt($ar->{json}{id} // $kid, $kid, 'a new job');
is(http('GET', '/jobs-api/' . ($kid // 'none'))->{json}{status}, 'expired',
    'the first expired');
is(read_answer($hold)->{status}, 200, 'the busy job answered');
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0 },
    scaled(10), 'passed'), 'the expired job passed, not run');

# a running async job cancelled (RPUSH as offload-nginx, LPOP and the
# kill by the supervisor as offload-sidecar)
$ar = http('POST', '/jobs/sleep', '{"ms":20000}',
    { Prefer => 'respond-async' });
$aid = $ar->{json}{id} // '';
ok(wait_until(sub { (http('GET', "/jobs-api/$aid")->{json}{status} // '')
    eq 'running' }, scaled(10), 'running'), 'a long async job runs');
is(http('DELETE', "/stop-api/$aid")->{json}{status}, 'cancelled',
    'DELETE with offload_cancel_running: cancelled');
ok(wait_until(sub { pending_jobs('sleep') == 0
    && redis_cmd('XLEN', 'offload:{sleep}:jobs') == 0 }, scaled(10),
    'stopped'), 'its worker stopped, its entry dropped');

# a 2 MB job goes into its body key (EXISTS, MULTI, RPUSH, PEXPIRE, EXEC,
# RPUSHes, XADD) and its result comes back as a notice read with LLEN and
# LINDEX
my $big = '"' . ('b' x (2 * 2**20)) . '"';
my $br = http('POST', '/jobs/echo', $big);
is($br->{status}, 200, 'a 2 MB echo job (body key, result notice)');
ok(($br->{content} // '') eq $big, 'with its bytes back');

# the same into a queue nobody reads: its entry and body key stay
is(redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers', '$',
    'MKSTREAM'), 'OK', 'a queue nobody reads');
my $sp = send_post('/jobs/parked', $big);
ok(wait_until(sub { redis_cmd('XLEN', 'offload:{parked}:jobs') == 1 },
    scaled(10), 'parked job'), 'a 2 MB job XADDed as offload-nginx');
my $parked = 'offload:{parked}:body:'
    . (stream_entries('offload:{parked}:jobs')->[0]{id} // '');
my $list = redis_cmd('LRANGE', $parked, 0, -1);
ok(ref $list eq 'ARRAY' && join('', @$list) eq $big,
    'its body key written as offload-nginx (MULTI, RPUSH, PEXPIRE, EXEC)');
ok(redis_cmd('PTTL', $parked) > 0, 'with its lifetime');
close $sp;

# a big result, a list as a worker stores it, read as offload-nginx: after
# a notice, and by the last look (WRONGTYPE to its GETRANGE)
for my $case ([ '/jobs/parked', 1 ], [ '/brief/parked', 0 ]) {
    my ($path, $notice) = @$case;
    my $a = parked_list_answer($path, $big, $notice, scaled(10));
    is($a->{status}, 200, 'a 2 MB list result read as offload-nginx ('
        . ($notice ? 'notice' : 'last look') . ')');
    ok(($a->{content} // '') eq $big, 'its bytes');
}

# a deadline while Redis holds writes back: the body key is UNLINKed
redis_cmd('CLIENT', 'PAUSE', scaled(10) * 1000, 'WRITE');
my $late = http('POST', '/brief/parked', $big);
redis_cmd('CLIENT', 'UNPAUSE');
is($late->{status}, 504, 'a 2 MB job past its deadline mid-upload: 504');

my $status = http('GET', '/status');
is($status->{status}, 200, 'offload_status');
my ($me) = grep { $_->{node} eq node_name() }
    @{ ($status->{json} || {})->{nodes} || [] };
ok($me, 'offload_status lists the node (registry read as offload-nginx)')
    or diag($status->{content});

# ---- a crash on both attempts: requeue, then dead letter and 502
my $r = post_json('/jobs/crash', { boom => 1 }, scaled(20));
is($r->{status}, 502, 'crash job: 502');
is(($r->{json} || {})->{error}{code}, 'worker_crashed', 'worker_crashed');
is(scalar @{ stream_entries('offload:{crash}:dead') }, 1, 'one dead letter');

# an async job's crashes: a dead letter with a record, retried by offloadctl
# as offload-sidecar (its retry script makes the record a queued job's again)
my $cr = http('POST', '/jobs/crash', '{"async":1}',
    { Prefer => 'respond-async' });
my $cid = ($cr->{json} || {})->{id} // '';
ok(wait_until(sub { @{ stream_entries('offload:{crash}:dead') } == 2 },
    scaled(20), 'second dead letter'), 'an async crash job dead-lettered');
is(redis_cmd('HGET', record_key($cid), 'status'), 'dead', '... read dead');
my ($ctl, $conf) = (build_path('offloadctl'), sidecar_conf_file());
# an ACL of an earlier release, without +hdel: refused, and nothing changed
my $log = redis_cmd('ACL', 'LOG');
is(ref $log eq 'ARRAY' ? scalar @$log : -1, 0, 'ACL LOG is empty so far')
    or diag(explain($log));
redis_cmd('ACL', 'SETUSER', 'offload-sidecar', '-hdel');
my $rout = `$ctl -c $conf retry crash $cid 2>&1`;
ok($? >> 8 == 1 && $rout =~ /can't run this command/,
    'without +hdel: refused, exit 1')
    or diag($rout);
ok(@{ stream_entries('offload:{crash}:dead') } == 2
        && redis_cmd('XLEN', 'offload:{crash}:jobs') == 0
        && redis_cmd('HGET', record_key($cid), 'status') eq 'dead',
    '... and nothing changed (dead letters, queue, record)');
redis_cmd('ACL', 'LOG', 'RESET');
# the README's rules again
redis_cmd('ACL', 'SETUSER', 'offload-sidecar',
    @{ $rules{'offload-sidecar'} });
$rout = `$ctl -c $conf retry crash $cid 2>&1`;
is($? >> 8, 0, 'offloadctl retry crash <job>') or diag($rout);
ok(wait_until(sub { @{ stream_entries('offload:{crash}:dead') } == 2
        && (redis_cmd('HGET', record_key($cid), 'status') // '') eq 'dead'
        && redis_cmd('HGET', record_key($cid), 'attempts') == 2 },
    scaled(20), 'dead again'), 'the retried job ran twice and failed again');

# ---- a worker killed under a job: handed back, run again, 200
my $victim = worker_pids()->{sleep}[0];
my $sock = send_post('/jobs/sleep', '{"ms":500}');
ok(wait_until(sub {
    my $w = node_doc()->{queues}{sleep}{workers}[0] || {};
    ($w->{state} // '') eq 'busy';
}, 5, 'the sleep worker is busy'), 'the sleep worker runs the job');
kill 'KILL', $victim;
is(read_answer($sock, scaled(15))->{status}, 200,
    'the killed worker\'s job runs again: 200');

# ---- offloadctl, with the sidecar's credentials (retry: above)
for my $cmd ('ping', 'status', 'queues', 'top -b -n 1', 'events -n 5',
    'dead crash',
    'drain -t 10 ' . node_name(), 'resume -t 10 ' . node_name(),
    'purge crash --all')
{
    my $out = `$ctl -c $conf $cmd 2>&1`;
    is($? >> 8, 0, "offloadctl $cmd") or diag($out);
}
# nginx learns of the resume at its next registry read (each second)
ok(wait_until(sub {
    post_json('/jobs/echo', { after => 'resume' })->{status} == 200 },
    scaled(5), 'resumed'), 'jobs after drain and resume');

# ---- a program submitting jobs itself, as offload-submitter
my $sconf = tmpdir() . '/submitter.conf';
# (no queue in it: it serves none, it names its Redis and user)
spew($sconf, "redis 127.0.0.1:${\ redis_port()};\n"
    . "redis_user offload-submitter;\n"
    . "password $secret{'offload-submitter'};\n");
my $sub = "$ctl -c $sconf";
my $out = `$sub submit echo '{"as":"submitter"}' --wait 2>&1`;
is("$? $out", "0 {\"as\":\"submitter\"}\n",
    'offloadctl submit --wait as offload-submitter');
spew(tmpdir() . '/big.json', $big);
$out = `$sub submit --wait --timeout 20s echo \@${\ tmpdir()}/big.json 2>&1`;
ok($? == 0 && $out eq "$big\n",
    'a 2 MB job (body key) and its result (a list) as offload-submitter')
    or diag(substr($out, 0, 300));
chomp(my $sid = `$sub submit echo '{"later":1}' 2>&1`);
like($sid, qr/^[0-9a-f]{32}$/, 'fire and forget as offload-submitter');
ok(wait_until(sub { `$sub result echo $sid 2>&1` eq "{\"later\":1}\n" },
    scaled(10), 'stored result'), 'offloadctl result as offload-submitter');
$out = `$sub submit nosuch '{}' 2>&1`;
like($out, qr/unknown queue/, 'an unknown queue, as offload-submitter');

# ---- a reload (new workers) as offload-sidecar
my $text = slurp($conf);
spew($conf, $text =~ s/(queue echo \{ handler echo; workers) 2;/$1 1;/r);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload') } >= 1 }, scaled(20),
    'reload event'), 'reload done');
is(post_json('/jobs/echo', { after => 'reload' })->{status}, 200,
    'jobs after the reload');

# ---- nginx -t: user= needs password=, and a name
for my $bad ('user=offload-nginx', 'user= password=x') {
    my ($rc, $out) = nginx_test(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    location /jobs/echo { offload_redis \@REDIS\@ $bad; offload_pass echo; }
}
HTTP
    isnt($rc, 0, "nginx -t refuses offload_redis ... $bad");
    like($out, $bad =~ /password/ ? qr/invalid parameter "user="/
                                  : qr/"user=" needs "password="/,
        'with a message naming it') or diag($out);
}

# ---- a clean stop: the node leaves the registry (DEL, SREM)
is(stop_sidecar(), 0, 'the sidecar exits 0 on SIGTERM');
is(redis_cmd('SISMEMBER', 'offload:{ctl}:nodes', node_name()), 0,
    'the node left offload:{ctl}:nodes');
ok(wait_until(sub {
    my $q = (http('GET', '/status')->{json}{queues} || {})->{crash} || {};
    ($q->{state} // '') eq 'unserved' && defined $q->{dead}
        && defined $q->{retrying} }, scaled(10), 'unserved'),
    'offload_status lists the queues left without a node, their dead '
    . 'letters and retries too (read as offload-nginx)');

# ---- Redis refused nothing
is_deeply(redis_cmd('KEYS', 'offload:{parked}:body:*'), [ $parked ],
    'the late job\'s body key went (UNLINK as offload-nginx)');
$log = redis_cmd('ACL', 'LOG');
is(ref $log eq 'ARRAY' ? scalar @$log : -1, 0, 'ACL LOG is empty')
    or diag(explain($log));
for my $file ('sidecar.log', 'sidecar.stderr', 'error.log') {
    unlike(slurp(tmpdir() . "/$file"), qr/NOPERM/, "no NOPERM in $file");
}

# ---- Redis restarted on its AOF has every key as it was: with a bare
# "user default off", Redis 7.0 replayed no transaction of the AOF (the
# completions: results, acknowledgements), NOPERM at each EXEC
sub kept {
    my %kept;
    for my $key (@{ redis_cmd('KEYS', 'offload:*') }) {
        my $ttl = redis_cmd('PTTL', $key);
        next if $ttl >= 0 && $ttl < scaled(10) * 1000;  # may expire meanwhile
        my $type = redis_cmd('TYPE', $key);
        my %size = (string => 'STRLEN', stream => 'XLEN', hash => 'HLEN',
                    list => 'LLEN', set => 'SCARD', zset => 'ZCARD');
        $kept{$key} = "$type " . redis_cmd($size{$type}, $key);
    }
    return \%kept;
}
my $before = kept();
ok(exists $before->{"offload:{echo}:result:$sid"},
    'a stored result, written by a completion (MULTI/EXEC)');
stop_redis();
start_redis(@redis);
is_deeply(kept(), $before, 'Redis restarted on its AOF: every key kept');
unlike(slurp(tmpdir() . '/redis.log'), qr/NOPERM|CRITICAL/,
    'nothing in its log refused on loading');

finish();
