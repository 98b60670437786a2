#!/usr/bin/perl
# Big jobs never travel in one Redis command (docs/PROTOCOL.md, "The
# worker's steps"): jobs submitted straight to Redis as a program would,
# their body written to the body key as a list of 256 KB slices (MULTI,
# RPUSH, PEXPIRE, EXEC, then RPUSHes) and the entry added with an empty
# payload and "body <length>".  The real sidecar reads the body with LLEN
# and an LINDEX per element, stages a big result as a list (its header
# line, then its body in slices) and completes with the staging key; a
# MONITOR client watches every command.  Also: a body of uneven elements,
# a body gone or of another length (bad_job, 400), a job out of attempts
# (dead letter, body kept a week, `offloadctl retry` runs it again with
# its body, `offloadctl replay` reads it), a job completed twice (first
# result kept, no staging key), a connection lost while staging, a result
# that cannot be staged (RPUSH refused by ACL: 3 tries, then 500).
# OFFLOAD_BIG_MB (default 5) sets the echo job's size.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;
use RedisMonitor;

my $SLICE = 262_144;            # OFFLOAD_SLICE
my $MARGIN = 1024;
my $MB = $ENV{OFFLOAD_BIG_MB} || 5;
my $REPLY = 'offload:reply:t49';

start_redis(args => [ '--slowlog-log-slower-than', 0,
    '--slowlog-max-len', 100_000 ]);
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
CONF

my $ctl = build_path('offloadctl') . ' -c ' . sidecar_conf_file();
my $n = 0;

# A raw RESP connection: MONITOR or SUBSCRIBE, read as messages arrive.
sub raw_client {
    my (@cmd) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => redis_port(), Proto => 'tcp', Timeout => 2)
        or die "redis connect: $!\n";
    my $req = '*' . @cmd . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @cmd;
    syswrite($s, $req);
    return { sock => $s, buf => '', sel => IO::Select->new($s) };
}

# Reads what has arrived within $wait seconds into the client's buffer.
sub pump {
    my ($c, $wait) = @_;
    while ($c->{sel}->can_read($wait)) {
        my $got = sysread($c->{sock}, $c->{buf}, 1 << 20, length $c->{buf});
        last unless $got;
        $wait = 0;
    }
}

# One RESP value of $$buf at $pos: (value, next pos), or () if incomplete.
sub parse_resp {
    my ($buf, $pos) = @_;
    my $eol = index($$buf, "\r\n", $pos);
    return () if $eol < 0;
    my ($t, $v) = (substr($$buf, $pos, 1),
        substr($$buf, $pos + 1, $eol - $pos - 1));
    $pos = $eol + 2;
    if ($t eq '$') {
        return () if length($$buf) < $pos + $v + 2;
        return (substr($$buf, $pos, $v), $pos + $v + 2);
    }
    if ($t eq '*') {
        my @a;
        for (1 .. $v) {
            my ($e, $next) = parse_resp($buf, $pos);
            return () unless defined $next;
            push @a, $e;
            $pos = $next;
        }
        return (\@a, $pos);
    }
    return ($v, $pos);
}

# Pub/sub messages on the channel so far, in order.
sub messages {
    my ($c) = @_;
    pump($c, 0.05);
    my ($pos, @msgs) = (0);
    while (1) {
        my ($v, $next) = parse_resp(\$c->{buf}, $pos);
        last unless defined $next;
        push @msgs, $v->[2] if ref $v && $v->[0] eq 'message';
        $pos = $next;
    }
    return \@msgs;
}

# MONITOR lines so far: [ client address or "lua", [ name, args ] ].
sub monitored {
    my ($c) = @_;
    pump($c, 0.1);
    my @cmds;
    for my $line (split /\r\n/, $c->{buf}) {
        my ($who, $cmd) = RedisMonitor::parse_line($line) or next;
        push @cmds, [ $who, [ @$cmd[1 .. $#$cmd] ] ];
    }
    return \@cmds;
}

# Writes a body key as a list, as the module does: the first element with
# the key's lifetime in one transaction, then the others.  Elements of
# OFFLOAD_SLICE bytes, or of the sizes given (the last takes the rest).
sub put_body {
    my ($queue, $id, $body, @sizes) = @_;
    my $key = "offload:{$queue}:body:$id";
    my @elements;
    for (my $off = 0; $off < length $body; ) {
        my $n = @sizes > 1 ? shift @sizes : @sizes ? length $body : $SLICE;
        push @elements, substr($body, $off, $n);
        $off += $n;
    }
    redis_cmd('UNLINK', $key);
    my @r = redis_cmds([ 'MULTI' ], [ 'RPUSH', $key, shift @elements ],
        [ 'PEXPIRE', $key, 120_000 ], [ 'EXEC' ]);
    die "body $key: MULTI failed\n" unless ref $r[3] eq 'ARRAY';
    redis_cmd('RPUSH', $key, $_) for @elements;
    return $key;
}

# A list's elements from $from on, joined, read 4 at a time (1 MB).
sub joined {
    my ($key, $from) = @_;
    my ($v, $len) = ('', redis_cmd('LLEN', $key));
    for (my $i = $from // 0; $i < $len; $i += 4) {
        $v .= join '', @{ redis_cmd('LRANGE', $key, $i, $i + 3) };
    }
    return $v;
}

sub add_job {
    my ($queue, $id, $len, %o) = @_;
    my $now = int(time * 1000);
    return redis_cmd('XADD', "offload:{$queue}:jobs", 'NOMKSTREAM', '*',
        v => 1, id => $id, payload => '', reply => $REPLY,
        deadline => $o{deadline} // $now + 60_000, submitted => $now,
        attempt => 1, rid => "r$id", body => $len);
}

sub new_id { sprintf '%032x', 0x49000 + ++$n }

# ACL LOG entries as hashes (reason, object, count, ...).
sub acl_log { [ map { +{ @$_ } } @{ redis_cmd('ACL', 'LOG') } ] }

# The stored result: a big one is a list, its header line alone first
# (checked here), then its body in slices; a small one a string.
sub stored {
    my ($key) = @_;
    return redis_cmd('GET', $key) if redis_cmd('TYPE', $key) ne 'list';
    my $header = redis_cmd('LINDEX', $key, 0);
    return "element 0 is not the header line alone: "
        . substr($header, 0, 200) unless $header =~ /\AOR1 [^\n]*\n\z/;
    return $header . joined($key, 1);
}

my $sub = raw_client('SUBSCRIBE', $REPLY);
my $mon = raw_client('MONITOR');
pump($sub, 1);
pump($mon, 1);

# ---- a big echo job: read in slices, result staged, notice published
my $payload = '"' . ('b' x ($MB * 2**20 - 2)) . '"';
my $id = new_id();
my $body_key = put_body('echo', $id, $payload);
my $t0 = time;
ok(add_job('echo', $id, length $payload), "a $MB MB job added");
my $result_key = "offload:{echo}:result:$id";
ok(wait_until(sub { redis_cmd('EXISTS', $result_key) }, scaled(60),
    'the result'), 'its result is stored');
diag(sprintf '%d MB echo: XADD to result stored in %.0f ms', $MB,
    (time - $t0) * 1000);

is(redis_cmd('TYPE', $result_key), 'list', 'the result is a list');
my $res = stored($result_key);
like($res, qr/^OR1 $id 200 \d+ \d+ \d+ \d+\n/,
    'its first element the header line alone: 200');
ok(substr($res, index($res, "\n") + 1) eq $payload,
    'with the payload byte-exact');
ok(wait_until(sub { grep { $_ eq "ON1 $id" } @{ messages($sub) } },
    scaled(5), 'notice'), "the channel got the notice ON1 $id");
is(redis_cmd('EXISTS', $body_key), 0, 'the body key is gone');
is_deeply(redis_cmd('KEYS', 'offload:{echo}:stage:*'), [],
    'no staging key is left');
my $ttl = redis_cmd('TTL', $result_key);
ok($ttl > 0 && $ttl <= 60, "the result has its result_ttl ($ttl s)");

# MONITOR lags behind a big job: wait for the completion's RENAME
ok(wait_until(sub { pump($mon, 0.2); index($mon->{buf}, '"RENAME"') >= 0 },
    scaled(60), 'MONITOR'), 'MONITOR saw the completion');
my $cmds = monitored($mon);
my $slices = int((length($payload) + $SLICE - 1) / $SLICE);
my @on_body = grep { ($_->[1][1] // '') eq $body_key } @$cmds;
ok((grep { uc $_->[1][0] eq 'LLEN' } @on_body), 'the worker asked LLEN');
my @reads = grep { uc $_->[1][0] eq 'LINDEX' } @on_body;
is_deeply([ map { $_->[1][2] } @reads ], [ 0 .. $slices - 1 ],
    "then read the body with one LINDEX per element, in order ($slices)");
ok(!(grep { uc $_->[1][0] eq 'GETRANGE' || uc $_->[1][0] eq 'LRANGE' }
    @on_body), 'and nothing else read it');
my @pushes = grep { uc $_->[1][0] =~ /\ARPUSHX?\z/
    && $_->[1][1] =~ /^offload:\{echo\}:stage:\Q$id\E:/ } @$cmds;
my ($stager) = map { $_->[0] } @pushes;
my @stage = grep { $_->[0] eq $stager
    && ($_->[1][1] // '') =~ /^offload:\{echo\}:stage:\Q$id\E:/ } @$cmds;
my $result_body = length($res) - index($res, "\n") - 1;
is(scalar @pushes, 1 + int(($result_body + $SLICE - 1) / $SLICE),
    scalar(@pushes) . ' RPUSHes staged the result: the header, then the '
    . 'JSON body in slices');
like($pushes[0][1][2] // '', qr/\AOR1 $id 200 [^\n]*\n\z/,
    'the first the header line alone');
ok(!(grep { length($_->[1][2]) > $SLICE } @pushes),
    'each of at most OFFLOAD_SLICE bytes');
is_deeply([ map { uc $_->[1][0] } grep { uc $_->[1][0] !~ /\ARPUSH/ } @stage ],
    [ 'UNLINK', 'PEXPIRE' ], 'with one UNLINK and PEXPIRE (in the MULTI)');
is_deeply([ map { uc $_->[1][0] } @pushes[1 .. $#pushes] ],
    [ ('RPUSHX') x $#pushes ], 'the slices after the first by RPUSHX');
my @tx = map { uc $_->[1][0] } grep { $_->[0] eq $stager
    && $_->[1][0] =~ /^(?:MULTI|EXEC)$/i } @$cmds;
is_deeply(\@tx, [ 'MULTI', 'EXEC' ], 'one MULTI ... EXEC');
my @big = grep { grep { length > $SLICE + $MARGIN } @{ $_->[1] } } @$cmds;
ok(!@big, 'no command carried an argument over OFFLOAD_SLICE + 1 KB')
    or diag(join "\n", map { "$_->[0] $_->[1][0] " . join ' ',
        map { length } @{ $_->[1] } } @big);
ok((grep { uc $_->[1][0] eq 'RENAME' } @$cmds),
    'the completion renamed the staging key');
ok((grep { uc $_->[1][0] eq 'UNLINK' && ($_->[1][1] // '') eq $body_key }
    @$cmds), 'and unlinked the body key');
ok(!(grep { $_->[1][0] =~ /^(?:APPEND|SETRANGE|GETRANGE|GET)$/i
    && ($_->[1][1] // '') =~ /^offload:\{echo\}:(?:stage|result):\Q$id\E/ }
    @$cmds), 'no string command touched the result');

# The sidecar's connections: those that read jobs.
my %sidecar = map { $_->[0] => 1 }
    grep { uc $_->[1][0] eq 'XREADGROUP' } @$cmds;
my ($worst) = sort { $b->[2] <=> $a->[2] }
    grep { $sidecar{ $_->[4] // '' } }
    @{ redis_cmd('SLOWLOG', 'GET', 100_000) };
diag(sprintf 'the sidecar\'s longest Redis command: %s, %d us',
    uc $worst->[3][0], $worst->[2]) if $worst;

# ---- run twice: the first result stays, no staging key is left
my $other = '"' . ('c' x ($MB * 2**20 - 2)) . '"';
put_body('echo', $id, $other);
ok(add_job('echo', $id, length $other), 'the same job added again');
ok(wait_until(sub {
    (grep { $_ eq "ON1 $id" } @{ messages($sub) }) >= 2 }, scaled(60),
    'second notice'), 'the second run completed');
ok(stored($result_key) eq $res, 'the first result is kept');
ok(wait_until(sub { pump($mon, 0.2); $mon->{buf} =~
    /\[\d+ lua\] "UNLINK" "offload:\{echo\}:stage:$id:/ }, scaled(30),
    'MONITOR'), 'the completion unlinked its staging key');
is_deeply(redis_cmd('KEYS', 'offload:{echo}:stage:*'), [],
    'no staging key is left');
is(redis_cmd('EXISTS', $body_key), 0, 'the body key is gone');
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), 0, 'the stream is empty');

# ---- the connection lost while staging: staged again from the start
my $cut = new_id();
my $cut_body = '"' . ('e' x (16 * 2**20 - 2)) . '"';
put_body('echo', $cut, $cut_body);
$mon->{buf} = '';
add_job('echo', $cut, length $cut_body);
$stager = undef;
ok(wait_until(sub {
    pump($mon, 0.01);
    ($stager) = $mon->{buf} =~
        /\[\d+ ([\d.:]+)\] "RPUSH" "offload:\{echo\}:stage:$cut:/;
    $stager }, scaled(30), 'staging'), 'the worker stages a 16 MB result');
redis_cmd('CLIENT', 'KILL', 'ADDR', $stager);
my $cut_key = "offload:{echo}:result:$cut";
ok(wait_until(sub { redis_cmd('EXISTS', $cut_key) }, scaled(30), 'result'),
    'after its connection was killed, the result is stored');
ok(stored($cut_key) =~ /^OR1 $cut 200 [^\n]*\n(.*)\z/s && $1 eq $cut_body,
    'byte-exact');
ok(wait_until(sub { pump($mon, 0.2); index($mon->{buf}, '"RENAME"') >= 0 },
    scaled(30), 'MONITOR'), 'MONITOR saw the completion');
my @sets = grep { $_->[1][0] eq 'RPUSH' && ($_->[1][1] // '') =~ /:stage:$cut:/
    && $_->[1][2] =~ /\AOR1 / } @{ monitored($mon) };
SKIP: {
    skip 'the kill came after the staging was done', 1 if @sets == 1;
    ok(@sets == 2 && $sets[1][0] ne $stager,
        'staged again from its first slice on a new connection');
}
is_deeply(redis_cmd('KEYS', 'offload:{echo}:stage:*'), [],
    'no staging key is left');
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), 0, 'the stream is empty');

# ---- a body of uneven elements (1 MB, 7 bytes, the rest): any sizes do
my $uneven = new_id();
my $uneven_body = '"' . ('u' x (3 * 2**20 - 2)) . '"';
my $uneven_key = put_body('echo', $uneven, $uneven_body, 2**20, 7, 0);
is(redis_cmd('LLEN', $uneven_key), 3, 'a body of 3 uneven elements');
$mon->{buf} = '';
add_job('echo', $uneven, length $uneven_body);
my $uneven_result = "offload:{echo}:result:$uneven";
ok(wait_until(sub { redis_cmd('EXISTS', $uneven_result) }, scaled(30),
    'result'), 'its result is stored');
ok(stored($uneven_result) =~ /^OR1 $uneven 200 [^\n]*\n(.*)\z/s
    && $1 eq $uneven_body, 'byte-exact');
ok(wait_until(sub { pump($mon, 0.2); index($mon->{buf}, '"RENAME"') >= 0 },
    scaled(30), 'MONITOR'), 'MONITOR saw the completion');
is_deeply([ map { $_->[1][2] } grep { uc $_->[1][0] eq 'LINDEX'
    && $_->[1][1] eq $uneven_key } @{ monitored($mon) } ], [ 0, 1, 2 ],
    'read with an LINDEX per element');

# ---- a result that cannot be staged (RPUSH refused): 3 tries, then 500
my $refused = new_id();
my $refused_body = '"' . ('r' x (2 * 2**20 - 2)) . '"';
my $refused_key = put_body('echo', $refused, $refused_body);
is(redis_cmd('ACL', 'SETUSER', 'default', '-rpush'), 'OK',
    'RPUSH refused from now on');
add_job('echo', $refused, length $refused_body);
ok(wait_until(sub { grep { /^OR1 $refused 500 / } @{ messages($sub) } },
    scaled(10), '500'), 'a result that cannot be staged: 500');
redis_cmd('ACL', 'SETUSER', 'default', '+rpush');
like(stored("offload:{echo}:result:$refused"), qr/"result_not_stored"/,
    'result_not_stored');
# each try's first RPUSH, in its MULTI (its next RPUSH is on its way too)
my $tries = 0;
$tries += $_->{count} for grep { $_->{object} eq 'rpush'
    && $_->{context} eq 'multi' } @{ acl_log() };
is($tries, 3, 'after 3 tries') or diag(explain(acl_log()));
is_deeply(redis_cmd('KEYS', 'offload:{echo}:stage:*'), [],
    'no staging key is left');
is(redis_cmd('EXISTS', $refused_key), 0, 'the body key is gone');
is(redis_cmd('XLEN', 'offload:{echo}:jobs'), 0, 'the stream is empty');

# ---- a body gone: bad_job, 400 answered
my $gone = new_id();
ok(add_job('echo', $gone, 300_000), 'a job whose body key is missing');
ok(wait_until(sub { grep { /^OR1 $gone 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'answered 400 on the channel');
my ($letter) = grep { $_->{id} eq $gone }
    @{ stream_entries('offload:{echo}:dead') };
is($letter && $letter->{reason}, 'bad_job', 'dead letter: bad_job');
like($letter && $letter->{report}, qr/body is gone \(expired or deleted\)/,
    'its report says the body is gone');

# ---- a body of another length: the same, the key kept with the letter
my $short = new_id();
my $short_key = put_body('echo', $short, '"short"');
add_job('echo', $short, 600_000);
ok(wait_until(sub { grep { /^OR1 $short 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'a body of another length: 400');
like(stored("offload:{echo}:result:$short"), qr/holds 7 bytes, not 600000/,
    'the answer says what was found');
ok(redis_cmd('PTTL', $short_key) > 6 * 86_400_000,
    'its body key is kept a week with the dead letter');
my $long = new_id();
put_body('echo', $long, '"abc"zz', 5, 0);
add_job('echo', $long, 5);
ok(wait_until(sub { grep { /^OR1 $long 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'a body longer than its entry says: 400');
like(stored("offload:{echo}:result:$long"), qr/holds more than 5 bytes/,
    'the answer says so (the read stopped at the element too many)');
my $dust = new_id();
put_body('echo', $dust, '"ab"', 1, 1, 1, 0);
redis_cmd('RPUSH', "offload:{echo}:body:$dust", '', '');
add_job('echo', $dust, 4);
ok(wait_until(sub { grep { /^OR1 $dust 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'a body of more elements than bytes: 400');
like(stored("offload:{echo}:result:$dust"), qr/has 6 elements for 4 bytes/,
    'the answer says so, before reading any');
my $huge = new_id();
add_job('echo', $huge, '100000000000000000');
ok(wait_until(sub { grep { /^OR1 $huge 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'an entry claiming a 10^17-byte body: 400 bad_job');
like(stored("offload:{echo}:result:$huge"), qr/bad body length/,
    'the answer says so');
my $string = new_id();
redis_cmd('SET', "offload:{echo}:body:$string", '"abc"', 'PX', 60_000);
add_job('echo', $string, 5);
ok(wait_until(sub { grep { /^OR1 $string 400 / } @{ messages($sub) } },
    scaled(10), '400'), 'a body key that is not a list: 400');
like(stored("offload:{echo}:result:$string"), qr/is not a list/,
    'the answer says so');

# ---- an expired job is answered without reading its body
my $late = new_id();
my $late_key = put_body('echo', $late, '"late"');
add_job('echo', $late, 6, deadline => int(time * 1000) - 1000);
ok(wait_until(sub { grep { /^OR1 $late 504 / } @{ messages($sub) } },
    scaled(10), '504'), 'an expired job: 504');
ok(!(grep { $_->[1][0] =~ /^(?:LLEN|LINDEX)$/i && $_->[1][1] eq $late_key }
    @{ monitored($mon) }), 'its body was not read');
is(redis_cmd('EXISTS', $late_key), 0, 'and its body key is gone');

# ---- out of attempts: dead letter with its body, then retry
my $doomed = new_id();
my $doomed_body = '{"pad":"' . ('d' x 400_000) . '"}';
my $doomed_key = put_body('crash', $doomed, $doomed_body);
add_job('crash', $doomed, length $doomed_body);
my $dead;
ok(wait_until(sub {
    ($dead) = grep { $_->{id} eq $doomed }
        @{ stream_entries('offload:{crash}:dead') };
    $dead }, scaled(20), 'dead letter'), 'the crashing job is a dead letter');
is($dead && $dead->{body}, length $doomed_body, 'with its body length');
ok(redis_cmd('PTTL', $doomed_key) > 6 * 86_400_000,
    'its body key is kept a week');
ok(joined($doomed_key) eq $doomed_body, 'whole');
my $out = `$ctl dead crash 2>&1`;
like($out, qr/body: ${\ length $doomed_body} bytes in \Q$doomed_key\E/,
    'offloadctl dead shows where the body is');

my $crashes = sub { scalar grep { ($_->{report}{job_id} // '') eq $doomed }
    @{ events('crash') } };
is($crashes->(), 1, 'one crash so far');
$out = `$ctl retry crash $doomed 2>&1`;
is($? >> 8, 0, 'offloadctl retry: exit 0') or diag($out);
ok(wait_until(sub { $crashes->() == 2 }, scaled(20), 'second crash'),
    'the job ran again (it crashed again)');
my ($again) = grep { $_->{id} eq $doomed }
    @{ stream_entries('offload:{crash}:dead') };
ok(wait_until(sub {
    ($again) = grep { $_->{id} eq $doomed }
        @{ stream_entries('offload:{crash}:dead') };
    $again }, scaled(10), 'dead again'), 'and is a dead letter again');
is($again && $again->{body}, length $doomed_body, 'with its body');
is($again && $again->{payload}, '', 'and an empty payload');
ok(redis_cmd('PTTL', $doomed_key) > 6 * 86_400_000,
    'its body key is kept again');

$out = `$ctl replay $doomed 2>&1`;
# (under ASan, its SEGV handler reports the crash and exits instead)
ok(($? & 127) == 11 || (sanitize() && $out =~ /AddressSanitizer: SEGV/),
    'offloadctl replay runs the handler on the body (SIGSEGV)')
    or diag($out);
like($out, qr/replaying job $doomed \(dead letter of queue crash, attempt \d+\)/,
    'replay found the job');

redis_cmd('DEL', $doomed_key);
$out = `$ctl replay $doomed 2>&1`;
like($out, qr/body is gone .*\Q$doomed_key\E/,
    'replay with the body gone says so');
$out = `$ctl retry crash $doomed 2>&1`;
isnt($? >> 8, 0, 'retry with the body gone: exit non-zero');
like($out, qr/body of job $doomed .* is gone/, 'and says why') or diag($out);
ok((grep { $_->{id} eq $doomed } @{ stream_entries('offload:{crash}:dead') }),
    'the dead letter stays');

# ---- purge takes a dead letter's body with it
my $kept = new_id();
my $kept_key = put_body('crash', $kept, '{"pad":"k"}');
add_job('crash', $kept, length '{"pad":"k"}');
ok(wait_until(sub { grep { $_->{id} eq $kept }
    @{ stream_entries('offload:{crash}:dead') } }, scaled(20), 'dead letter'),
    'another crashing job is a dead letter, its body kept');
is(redis_cmd('EXISTS', $kept_key), 1, 'its body key is there');
`$ctl purge crash $kept 2>&1`;
is($? >> 8, 0, 'offloadctl purge: exit 0');
ok(!(grep { $_->{id} eq $kept } @{ stream_entries('offload:{crash}:dead') }),
    'the dead letter is gone');
is(redis_cmd('EXISTS', $kept_key), 0, 'and so is its body key');

finish();
