#!/usr/bin/perl
# Each handler's round trip through HTTP: nginx + module -> Redis -> sidecar
# worker -> Redis -> module -> client, with the headers the module adds.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256 sha256_hex);
use Time::HiRes qw(time);
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; }
queue sha256 { handler sha256; workers 1; }
queue spin { handler spin; workers 1; }
queue sleep { handler sleep; workers 1; }
queue events.aggregate { handler events.aggregate; workers 1; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ {
        offload_pass $1;
        client_max_body_size 4m;
    }
    location = /big/events.aggregate {
        offload_pass events.aggregate;
        client_max_body_size 128m;
        offload_timeout 180s;
    }
}
HTTP
ok(wait_nginx_ready('/jobs/echo', '{}'), 'stack ready');

# Checks the parts every successful job answer has; returns the decoded body.
sub job_ok {
    my ($r, $name) = @_;
    is($r->{status}, 200, "$name: 200") or diag($r->{content});
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$name: Content-Type");
    like($r->{headers}{'x-offload-job-id'} // '', qr/^[0-9a-f]{32}$/,
        "$name: X-Offload-Job-Id");
    like($r->{headers}{'server-timing'} // '',
        qr/^queue;dur=\d+\.\d{3}, run;dur=\d+\.\d{3}, cpu;dur=\d+\.\d{3}, traceparent;desc="00-[0-9a-f]{32}-[0-9a-f]{16}-01"$/,
        "$name: Server-Timing");
    return $r->{json};
}

sub run_ms {
    my ($r) = @_;
    my ($ms) = ($r->{headers}{'server-timing'} // '') =~ /run;dur=([\d.]+)/;
    return $ms // -1;
}

# ---- echo
my $doc = { a => [1, 2, { b => undef, c => "\x{fc}ber\n\"q\"" }],
            d => JSON::PP::true, e => 1.5, f => { g => { h => [[], {}] } } };
my $r = post_json('/jobs/echo', $doc);
is_deeply(job_ok($r, 'echo'), $doc, 'echo: nested JSON comes back equal');

my $r2 = post_json('/jobs/echo', $doc);
isnt($r2->{headers}{'x-offload-job-id'}, $r->{headers}{'x-offload-job-id'},
    'each job has its own id');

$r = post_json('/jobs/echo', '"just a string"');
is_deeply(job_ok($r, 'echo scalar'), 'just a string', 'echo: a JSON scalar');

# larger than hiredis' 16 KB read size, on both connections of the module
my $big = { blob => join('', map { chr(97 + $_ % 26) } 1 .. 1_500_000) };
$r = post_json('/jobs/echo', $big);
my $got = job_ok($r, 'echo 1.5 MB');
ok($got && $got->{blob} eq $big->{blob}, 'echo: 1.5 MB body intact');

# ---- sha256: round 1 hashes the data, each next round the previous digest
for my $case ([ 'abc', 1 ], [ '', 1 ], [ 'abc', 1000 ],
              [ "h\x{e9}llo \x{263a}", 3 ])
{
    my ($data, $rounds) = @$case;
    my $bytes = $data;
    utf8::encode($bytes);
    my $d = sha256($bytes);
    $d = sha256($d) for 2 .. $rounds;
    my $want = unpack('H*', $d);
    my %in = (data => $data);
    $in{rounds} = $rounds unless $rounds == 1 && $data eq '';
    $r = post_json('/jobs/sha256', \%in);
    my $out = job_ok($r, "sha256 rounds=$rounds");
    is($out && $out->{hex}, $want, "sha256 of '$bytes' x $rounds");
}
is(sha256_hex('abc'),
   'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
   'Digest::SHA sanity');
# libcrypto is loaded by the sha256 worker that ran jobs, by no other
# process of the sidecar (what it costs the others: their RSS)
my $maps = sub { slurp("/proc/$_[0]/maps") =~ /libcrypto/ ? 1 : 0 };
is($maps->(sidecar_pid()), 0, 'the supervisor has no libcrypto mapped');
is($maps->(worker_pids()->{echo}[0]), 0, 'an echo worker has none');
is($maps->(worker_pids()->{sha256}[0]), 1, 'the sha256 worker has it');

# ---- spin
my $t0 = time;
$r = post_json('/jobs/spin', { ms => 60 });
my $out = job_ok($r, 'spin');
ok($out && $out->{ms} >= 60, 'spin: reports >= 60 ms spun')
    or diag(explain $out);
ok(run_ms($r) >= 59, 'spin: run;dur >= 60 ms') or diag(run_ms($r));

# ---- sleep
$t0 = time;
$r = post_json('/jobs/sleep', { ms => 150 });
my $elapsed = (time - $t0) * 1000;
$out = job_ok($r, 'sleep');
ok($out && $out->{ms} >= 150, 'sleep: reports >= 150 ms') or diag(explain $out);
ok($elapsed >= 150, "sleep: took ${\ int $elapsed} ms");
ok(run_ms($r) >= 149, 'sleep: run;dur >= 150 ms');

# ---- events.aggregate on a small known batch (nearest-rank percentiles:
# the value at rank ceil(p/100 * n) of the sorted values)
my @events;
push @events, { type => 'a', value => $_, ts => 1000 + $_ } for reverse 1 .. 10;
push @events, { type => 'b', value => 3.5, ts => 5 };
push @events, { type => 'c', value => $_, ts => $_ } for 1 .. 20;
push @events, { type => 'd', value => -2.25, ts => 1 }, { type => 'd',
    value => 4, ts => 2 };

my %want = (
    a => { count => 10, sum => 55, min => 1, max => 10, mean => 5.5,
           p50 => 5, p95 => 10, p99 => 10 },
    b => { count => 1, sum => 3.5, min => 3.5, max => 3.5, mean => 3.5,
           p50 => 3.5, p95 => 3.5, p99 => 3.5 },
    c => { count => 20, sum => 210, min => 1, max => 20, mean => 10.5,
           p50 => 10, p95 => 19, p99 => 20 },
    d => { count => 2, sum => 1.75, min => -2.25, max => 4, mean => 0.875,
           p50 => -2.25, p95 => 4, p99 => 4 },
);

for my $form ([ 'array', \@events ], [ 'object', { events => \@events } ]) {
    $r = post_json('/jobs/events.aggregate', $form->[1]);
    $out = job_ok($r, "aggregate ($form->[0] form)");
    is($out && $out->{count}, scalar @events, "aggregate: count");
    for my $t (sort keys %want) {
        for my $k (sort keys %{ $want{$t} }) {
            my $v = $out && $out->{types}{$t}{$k};
            ok(defined $v && abs($v - $want{$t}{$k}) < 1e-9,
               "aggregate $form->[0]: $t.$k = $want{$t}{$k}")
                or diag("got " . ($v // 'undef'));
        }
    }
}

# a sum past a double's range: a 422 that says so (it said "out of
# memory": JSON has no text for infinity, and json_pack gave NULL)
$r = post_json('/jobs/events.aggregate',
    '[{"type":"a","value":1e308,"ts":1},{"type":"a","value":1e308,"ts":2}]');
is($r->{status}, 422, 'aggregate: a sum past a double\'s range: 422');
like($r->{json} && $r->{json}{error}{message} // '',
    qr/^type "a": the sum of its values is past the range of a double/,
    'which says so') or diag($r->{content});

# ---- events.aggregate: one job of 1,000,000 events
my @types = qw(click view buy scroll);
my (%count, %sum, %min);
my $n = 1_000_000;
my @parts;
for my $i (0 .. $n - 1) {
    my $t = $types[ $i % 4 ];
    my $v = $i % 1000;
    $count{$t}++;
    $sum{$t} += $v;
    $min{$t} = $v if !defined $min{$t} || $v < $min{$t};
    push @parts, qq({"type":"$t","value":$v,"ts":$i});
}
my $body = '[' . join(',', @parts) . ']';
@parts = ();
diag(sprintf 'aggregate: 1e6 events, %.1f MB body', length($body) / 1e6);
$t0 = time;
$r = http('POST', '/big/events.aggregate', $body, undef, 180);
diag(sprintf 'aggregate: 1e6 events answered in %.2f s', time - $t0);
$out = job_ok($r, 'aggregate 1e6');
is($out && $out->{count}, $n, 'aggregate 1e6: count');
for my $t (@types) {
    is($out && $out->{types}{$t}{count}, $count{$t}, "aggregate 1e6: $t count");
    is($out && $out->{types}{$t}{sum}, $sum{$t}, "aggregate 1e6: $t sum");
    is($out && $out->{types}{$t}{min}, $min{$t}, "aggregate 1e6: $t min");
}

finish();
