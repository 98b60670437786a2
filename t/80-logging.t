#!/usr/bin/perl
# Logging and correlation: the sidecar writes JSON lines with ECS-style
# fields; nginx's $request_id travels with the job, is on every line a
# worker logs about it and in a crash report, and comes back in the
# X-Request-Id header of every answer.  SIGUSR1 reopens the log files of
# the supervisor and of every worker (logrotate).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

# an exec handler whose stderr is not UTF-8: bytes that are not, and a
# line over 1900 bytes whose cut falls inside a character
my $binary = tmpdir() . '/binary.pl';
spew($binary, <<'PL');
$| = 1;
while (my $l = <STDIN>) {
    my ($id) = $l =~ /"id":"([^"]+)"/;
    print STDERR "bytes \xff\xfe\xc3 end\n", 'a' x 1893, "\xc3\xa9" x 50, "\n";
    print qq({"id":"$id","result":{}}\n);
}
PL

start_redis();
start_sidecar(level => 'debug json', conf => <<"CONF");
fault_handlers on;
queue echo { handler echo; workers 2; }
queue sha256 { handler sha256; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
queue binary { handler exec; workers 1; command "/usr/bin/perl $binary"; }
CONF
ok(start_jobs_nginx(), 'stack ready');
my $log = tmpdir() . '/sidecar.log';

sub lines {
    my ($file) = @_;
    return [ map { json_decode($_) // { unparsed => $_ } }
             split /\n/, slurp($file) ];
}

# ---- every answer carries X-Request-Id
my $r = post_json('/jobs/echo', { hello => 1 });
my $rid = $r->{headers}{'x-request-id'} // '';
like($rid, qr/^[0-9a-f]{32}$/, "a 200 carries X-Request-Id ($rid)");
my $job = $r->{headers}{'x-offload-job-id'};
my $bad = http('POST', '/jobs/echo', '{oops');
like($bad->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
    'a 400 carries it too');
isnt($bad->{headers}{'x-request-id'}, $rid, 'one id per request');

# ---- nginx (error_log at notice) logs no line per request
my $before = () = slurp(nginx_error_log()) =~ /\n/g;
my @res = concurrent_posts(4, 25, sub { $_[1] % 5 ? '{"ok":1}' : '{bad' });
is(scalar(grep { $_->{status} == 200 || $_->{status} == 400 } @res), 100,
    '100 answers, 200 and 400');
my %ids = map { ($_->{headers}{'x-request-id'} // '') => 1 } @res;
is(scalar(grep { /^[0-9a-f]{32}$/ } keys %ids), 100,
    'each of them with a request id of its own');
my $after = () = slurp(nginx_error_log()) =~ /\n/g;
is($after, $before, 'no error_log line for them at notice');

# ---- JSON lines with ECS-style fields; the job's lines name it
my $all = lines($log);
ok(@$all > 5, scalar(@$all) . ' log lines');
is(scalar(grep { $_->{unparsed} } @$all), 0, 'every line is JSON')
    or diag(explain [ grep { $_->{unparsed} } @$all ]);
my ($first) = @$all;
like($first->{'@timestamp'} // '',
    qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, '@timestamp, UTC');
ok(defined $first->{'log.level'} && defined $first->{message},
    'log.level and message');
is($first->{service}, 'offload-sidecar', 'service');
ok($first->{host} && $first->{pid}, 'host and pid');
my @mine = grep { ($_->{'request.id'} // '') eq $rid } @$all;
ok(@mine >= 1, 'the worker logged the job with its request.id');
is($mine[0]{'job.id'}, $job, 'and its job.id');
is($mine[0]{queue}, 'echo', 'and its queue');

# a request id written straight into a stream, with DEL and a C1 CSI:
# escaped in the line as JSON allows, so a terminal showing it obeys none
my $odd = sprintf '%032x', 0xabcd;
redis_cmd('XADD', 'offload:{echo}:jobs', '*', v => 1, id => $odd,
    payload => '{}', deadline => int(time * 1000) + 60000,
    rid => "odd\x7f\xc2\x9b1m");
ok(wait_until(sub { slurp($log) =~ /"job\.id":"$odd"/ }, scaled(5),
    'odd rid logged'), 'a job with an odd request id is logged');
like(slurp($log), qr/"request\.id":"odd\\u007f\\u009b1m"/,
    'its DEL and C1 escaped as \\u007f, \\u009b');

# a handler error is logged at info, with the ids
$r = post_json('/jobs/sha256', { data => 'x', rounds => 0 });
is($r->{status}, 422, 'a handler error');
my $rid2 = $r->{headers}{'x-request-id'};
ok(wait_until(sub { grep { ($_->{'request.id'} // '') eq $rid2
    && $_->{'log.level'} eq 'info' } @{ lines($log) } }, 5, 'error logged'),
    'logged at info with its request.id');

# ---- a crash report names the request
my $crashed = worker_pids()->{crash}[0];
$r = post_json('/jobs/crash', {}, scaled(20));
is($r->{status}, 502, 'a crash: 502');
my ($crash) = @{ events('crash') };
is($crash && $crash->{report}{request_id}, $r->{headers}{'x-request-id'},
    'the crash report carries the request id');
# the supervisor's lines of it name the queue and the job, its backtrace's
# too (before: none did)
my $cid = $r->{headers}{'x-offload-job-id'} // '?';
my @said;
ok(wait_until(sub { @said = grep { ($_->{message} // '')
        =~ /holding its job|^  #\d/ } @{ lines($log) }; @said > 1 },
    scaled(5), 'crash lines'),
    scalar(@said) . ' lines of the crash');
is(scalar(grep { ($_->{'job.id'} // '') ne $cid
        || ($_->{queue} // '') ne 'crash'
        || ($_->{'request.id'} // '') ne $r->{headers}{'x-request-id'} }
    @said), 0, 'each with queue, job.id and request.id');

# ---- SIGUSR1: every process reopens its log
ok(wait_until(sub {
    my $pid = worker_pids()->{crash}[0] or return 0;
    $pid != $crashed && grep { $_->{pid} == $pid
        && ($_->{message} // '') =~ /pending history done/ } @{ lines($log) };
}, 10, 'crash worker back'), 'the crash worker is back and reading');
rename $log, "$log.1" or die "rename: $!";
kill 'USR1', sidecar_pid();
ok(wait_until(sub { grep { ($_->{message} // '') eq 'log reopened' }
    @{ lines($log) } }, 5, 'supervisor reopened'),
    'the supervisor writes to the new file');
ok(wait_until(sub { 5 == grep { ($_->{message} // '')
    =~ /^worker \S+: log reopened$/ } @{ lines($log) } }, 5,
    'workers reopened'), 'all five workers write to the new file')
    or diag(join "\n", map { $_->{message} // '' } @{ lines($log) });
is(post_json('/jobs/echo', { after => 'reopen' })->{status}, 200,
    'jobs still run');

# ---- a handler's stderr that is not UTF-8 still makes JSON lines a
# strict parser takes (was: its bytes copied as they came)
is(post_json('/jobs/binary', {})->{status}, 200, 'a job of the binary '
    . 'handler');
my ($bytes, $cut);
ok(wait_until(sub {
    ($bytes) = grep { ($_->{message} // '') =~ /: bytes / } @{ lines($log) };
    ($cut) = grep { ($_->{message} // '') =~ /: a+.*\[cut\]$/ }
        @{ lines($log) };
    $bytes && $cut }, 5, 'stderr logged'),
    'its lines are logged as JSON') or diag(slurp($log) =~ /(.*bytes.*)/);
is(($bytes->{message} // '') =~ s/.*: bytes //r, "\x{fffd}\x{fffd}\x{fffd} end",
    'each byte that is not UTF-8 is U+FFFD');
like($cut->{message} // '', qr/a\x{e9}*\x{fffd}? \[cut\]$/,
    'a character cut in two is one U+FFFD, the whole ones kept');
is(scalar(grep { $_->{unparsed} } @{ lines($log) }), 0,
    'every line is still JSON');

# ---- SIGUSR2, SIGALRM: meant for another process, logged, not the node's
# end (their default action ended it, with no line said)
for my $sig (qw(USR2 ALRM)) {
    kill $sig, sidecar_pid();
    ok(wait_until(sub { grep { ($_->{message} // '') eq "got SIG$sig, "
        . 'which offload-sidecar does not use: ignored' } @{ lines($log) } },
        5, "SIG$sig logged"), "SIG$sig is logged and ignored");
}
ok(alive('sidecar'), 'the sidecar lives on');
is(post_json('/jobs/echo', { after => 'usr2' })->{status}, 200,
    'and runs jobs');

finish();
