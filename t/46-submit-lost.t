#!/usr/bin/perl
# liboffload on one Redis (no sentinels, no cluster) meets connections
# Redis closed under it, as build/line_client: its command connection
# closed while idle (Redis' `timeout`; a restart, CLIENT KILL or a
# proxy's idle reset look the same) is found closed before the next job
# is sent, and a new one made: the submit succeeds, nothing was sent on
# the old one.  Both its connections killed while it waits for a job
# (CLIENT KILL): the wait subscribes again, looks at the result key and
# returns the job's result, not an error that would have its caller
# submit the job again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use LineDriver;

start_redis();
start_sidecar(conf => <<'CONF');
result_ttl 30s;
queue echo { handler echo; workers 1; }
queue sleep { handler sleep; workers 1; }
CONF
for my $q (qw(echo sleep)) {
    ok(wait_until(sub { redis_cmd('EXISTS', "offload:{$q}:jobs") },
        scaled(10), "$q stream"), "the sidecar serves $q");
}

# Redis' clients now: id => { flags, cmd }
sub clients {
    my %c;
    for (split /\n/, redis_cmd('CLIENT', 'LIST')) {
        my %f = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split / /;
        $c{$f{id}} = \%f if ($f{cmd} // '') ne 'client|list';
    }
    return \%c;
}

sub ask {
    my ($d, $line, $timeout) = @_;
    syswrite($d->{in}, "$line\n");
    return line_of($d, $timeout // scaled(15)) // 'no answer';
}

my %before = %{ clients() };
my $c = start_driver(build_path('line_client'),
    'redis://127.0.0.1:' . redis_port());
like(line_of($c, scaled(10)) // '', qr/^connect ok \d+$/, 'connects');
like(ask($c, '{"n":1}'), qr/^ok 200 \{"n":1\} \d+$/, 'a job, its result');
# the client's connections: new since it started, the one that sent the
# XADD and the one subscribed
my $now = clients();
my @new = grep { !$before{$_} } keys %$now;
my @cmd_conn = grep { $now->{$_}{cmd} eq 'xadd' } @new;
my @sub_conn = grep { $now->{$_}{flags} =~ /P/ } @new;
is(scalar @cmd_conn, 1, 'the client has a command connection')
    or diag(explain($now));
is(scalar @sub_conn, 1, 'and a subscribed one') or diag(explain($now));
my $cmd_conn = $cmd_conn[0] // 0;

# ---- the command connection closed by Redis while idle
redis_cmd('CONFIG', 'SET', 'timeout', '1');
ok(wait_until(sub { !clients()->{$cmd_conn} }, scaled(10),
    'idle connection closed'), 'Redis closed the idle command connection');
redis_cmd('CONFIG', 'SET', 'timeout', '0');
like(ask($c, '{"n":2}'), qr/^ok 200 \{"n":2\} \d+$/,
    'the next job is submitted on a new connection, and answered');
is(redis_cmd('XLEN', 'offload:{echo}:dead'), 0, 'no dead letter');

# ---- both connections killed during a wait
my $line = ask($c, 'submit sleep {"ms":1500}');
like($line, qr/^submitted [0-9a-f]{32}$/, 'a 1.5 s job submitted');
my ($id) = $line =~ /([0-9a-f]{32})/;
syswrite($c->{in}, "wait sleep $id 10000\n");
$now = clients();
my @mine = grep { !$before{$_} && ($now->{$_}{cmd} eq 'xadd'
        || $now->{$_}{flags} =~ /P/) } keys %$now;
my $killed = 0;
$killed += redis_cmd('CLIENT', 'KILL', 'ID', $_) // 0 for @mine;
is($killed, 2, "the client's connections killed during its wait");
like(line_of($c, scaled(15)) // 'no answer', qr/^ok 200 \{"ms":1500\}/,
    'the wait still returns the job\'s result');
like(ask($c, '{"n":3}'), qr/^ok 200 \{"n":3\} \d+$/,
    'and the client goes on');

stop_drivers();
done_testing();
