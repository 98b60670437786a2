#!/usr/bin/perl
# Several long polls parked on one nginx worker at once (docs/HTTP_API.md):
# the end of a job wakes every poll waiting on it and no other, a poll whose
# client left is forgotten (the job's end must not touch it), a lost
# subscription makes the parked polls read again, and the worker lives on.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue sleep { handler sleep; workers 2; }
CONF
start_async_nginx(workers => 1);
ok(wait_nginx_ready('/sync/sleep', '{"ms":1}', 1), 'stack ready');
my ($worker) = nginx_worker_pids();

sub submit {
    my ($ms) = @_;
    my $r = post_json('/async/sleep', qq({"ms":$ms}));
    is($r->{status}, 202, "a $ms ms job: 202") or diag($r->{content});
    return $r->{json}{id} // '';
}

sub status { http('GET', "/jobs/$_[0]")->{json}{status} // '' }

# a long poll on its own connection, not read yet
sub poll {
    my ($id) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => nginx_port(), Proto => 'tcp') or die "connect: $!";
    print $s "GET /jobs/$id?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\n\r\n";
    return $s;
}

my $short = submit(1500);
my $long = submit(8000);
ok(wait_until(sub {
    status($short) eq 'running' && status($long) eq 'running';
}, scaled(10), 'both jobs running'), 'both jobs run');

# a poll's read of its record is an EVALSHA
my $evals = evalsha_calls();

my @on_short = map { poll($short) } 1 .. 2;
my $on_long = poll($long);
my $gone = poll($short);
# the client that leaves: nginx notices, its poll is forgotten
ok(wait_until(sub { evalsha_calls() >= $evals + 4 }, scaled(10),
    'the four polls read their records'), 'four polls parked');
close $gone;

for my $i (0, 1) {
    my $a = read_answer($on_short[$i], scaled(15));
    is($a->{status}, 200, "poll $i on the short job: 200");
    is($a->{json}{status}, 'done', "poll $i on the short job: done");
}
ok(!IO::Select->new($on_long)->can_read(0),
    'the poll on the other job still waits')
    or diag(status($long));
is(status($long), 'running', 'its job still runs');

# the subscription drops and comes back: ends may have been missed
# meanwhile, so the parked poll reads its record again, and waits on
$evals = evalsha_calls();
redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
ok(wait_until(sub { evalsha_calls() > $evals }, scaled(10), 'a read again'),
    'the subscription back, the parked poll reads its record again');
ok(!IO::Select->new($on_long)->can_read(0.5), 'and waits on');

my $a = read_answer($on_long, scaled(20));
is($a->{status}, 200, 'the long job ends: its poll answers 200');
is($a->{json}{status}, 'done', 'done');

is((nginx_worker_pids())[0], $worker, 'the same nginx worker all along');
unlike(slurp(nginx_error_log()), qr/\[(alert|crit|emerg)\]/,
    'no alert in the error log');

stop_all();
done_testing();
