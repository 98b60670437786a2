#!/usr/bin/perl
# The supervisor SIGKILLed while its workers are deep in jobs (a hang, a CPU
# spin, a sleep): every worker is gone within 1 s, whatever it was doing, so
# no orphan runs beside the next sidecar's worker of the same consumer name.
# A new sidecar under the same node_name then runs the held jobs again and
# their waiting clients are answered.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $queues = <<'CONF';
fault_handlers on;
queue hang { handler hang; workers 1; timeout 2s; }
queue spin { handler spin; workers 1; }
queue sleep { handler sleep; workers 1; }
queue echo { handler echo; workers 1; }
CONF

start_redis();
start_sidecar(conf => $queues);
ok(start_jobs_nginx(server => 'offload_timeout 60s;'), 'stack ready');

my %socks = (
    hang => send_post('/jobs/hang', '{}'),
    spin => send_post('/jobs/spin', '{"ms":1500}'),
    sleep => send_post('/jobs/sleep', '{"ms":1500}'),
);

sub busy {
    my ($q) = @_;
    my $w = (node_doc() || {})->{queues}{$q}{workers}[0] || {};
    return ($w->{state} // '') eq 'busy' && $w->{job};
}
ok(wait_until(sub { !grep { !busy($_) } keys %socks }, scaled(10),
    'every worker busy'), 'hang, spin and sleep workers are in their jobs');

my $pids = worker_pids();
my @workers = map { $pids->{$_}[0] } sort keys %socks;
is(scalar(grep { $_ } @workers), 3, 'three worker pids');

# gone, or a zombie nobody has reaped yet (init reaps orphans)
sub running {
    my $stat = slurp("/proc/$_[0]/stat");
    return $stat =~ /^\S+ \(.*\) [^Z]/;
}

my $t0 = time;
kill 'KILL', sidecar_pid();
ok(wait_until(sub { !grep { running($_) } @workers }, 1,
    'workers gone after their supervisor'),
    'every worker is gone within 1 s of its supervisor\'s SIGKILL');
diag(sprintf 'workers gone %.0f ms after the supervisor\'s SIGKILL',
    (time - $t0) * 1000);
stop_sidecar();

is(pending_jobs($_), 1, "the $_ job is still held by its dead consumer")
    for sort keys %socks;

# the same node_name again: each worker reads its consumer's history first
start_sidecar(conf => $queues);

my %want = (hang => 504, spin => 200, sleep => 200);
for my $q (sort keys %socks) {
    my $a = read_answer($socks{$q}, scaled(20));
    is($a->{status}, $want{$q}, "the held $q job is answered $want{$q}")
        or diag($a->{content});
}
is(pending_jobs($_), 0, "nothing of $_ left pending") for sort keys %socks;

finish();
