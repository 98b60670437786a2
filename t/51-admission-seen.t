#!/usr/bin/perl
# A job refused 503 no_workers has nginx read the node registry again at
# once (at most every 0.1 s), not at its next once-a-second read: a node
# back from a restart is seen by the jobs that come after it.  The node's
# registry document is taken away and put back by hand (the sidecar's
# heartbeat, 30 s here, would write it only later), so that the test
# knows where nginx's read timer stands.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use OffloadTest;

start_redis();
start_sidecar(heartbeat => '30s',
    conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(workers => 1), 'stack ready');
is(jobs_in_turn('/jobs/echo', 5), 5, 'jobs answered');

# the registry reads nginx made so far (no status page is read here)
sub reads {
    my $info = redis_cmd('INFO', 'commandstats') // '';
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_eval(?:sha)?_ro:calls=(\d+)/mg;
    return $n;
}
sub answer { post_json('/jobs/echo', '{"i":1}') }

# waits for nginx's next read of the registry
sub next_read {
    my ($what) = @_;
    my $c = reads();
    ok(wait_until(sub { reads() > $c }, scaled(3), $what), $what);
}

# nginx knows the queue from a read of the registry (a queue never listed
# is let through)
next_read('nginx reads the registry') for 1, 2;
my $key = 'offload:{ctl}:node:' . node_name();
my $doc = redis_cmd('GET', $key);
ok(defined $doc, 'the node has its registry document');
redis_cmd('DEL', $key);
ok(wait_until(sub { answer()->{status} == 503 }, scaled(5), 'unserved'),
    'without it, nginx answers 503');

# just after a read of nginx's timer, which found no node (the second
# read from here: the first may be one the last refusal asked for)
next_read('nginx reads the registry once a second') for 1, 2;
my $synced = time;
# past 0.1 s, the least time between two reads nginx asks for
sleep 0.15;
# as a node's start writes them (the node's claim round forgot the name)
redis_cmd('SET', $key, $doc, 'PX', 600_000);
redis_cmd('SADD', 'offload:{ctl}:nodes', node_name());

my $c = reads();
my $r = answer();
SKIP: {
    # the checks below need the timer's next read 0.35 s away at least
    skip(sprintf('the machine took %.2f s from the timer\'s read to the job',
        time - $synced), 4) if time - $synced > 0.65;
    is($r->{status}, 503, 'the node back, a job nginx refuses on its last '
        . 'read') or diag($r->{content});
    like($r->{content}, qr/"no_workers"/, '... no_workers');
    ok(wait_until(sub { reads() > $c }, 0.3, 'a read at once'),
        'makes nginx read the registry at once (its timer\'s next read is '
        . '0.35 s away at least)');
    ok(wait_until(sub { answer()->{status} == 200 }, 0.3, 'served'),
        'and the jobs after it are taken');
}
finish();
