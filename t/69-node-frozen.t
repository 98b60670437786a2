#!/usr/bin/perl
# A node that stops without dying (a paused VM or container, SIGSTOP of
# every process of it) for longer than claim_idle: another node claims its
# jobs, fails the attempt each had and runs them again or dead-letters
# them.  When the stopped node goes on, it finishes the job it was running
# and finds the jobs it had read claimed: it runs none of those again, and
# its late end of a job never changes the end the job's record has (a
# dead-lettered job stays dead, the first end of a job run twice stays).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use RedisMonitor;

my $queues = <<'CONF';
claim_idle 1s;
fault_handlers on;
queue hang { handler hang; workers 1; timeout 500ms; max_attempts 1; }
queue once { handler sleep; workers 1; max_attempts 1; }
queue batch {
    handler sleep; workers 1; prefetch 4;
    max_attempts 2; retry_backoff 100ms 100ms;
}
CONF

start_redis();
start_sidecar(conf => $queues);
start_async_nginx();

sub record { redis_cmd('HGETALL', record_key($_[0])) // [] }
sub field { my %h = @{ record($_[0]) }; $h{$_[1]} // '' }
# The node's registry document shows the queue's worker in its handler
# with the job: past its start script, so it runs it whatever it finds
# when it goes on (a worker stopped between its start script's run and
# its reading of the answer finds the job claimed, and rightly leaves it).
sub in_handler {
    my ($queue, $id) = @_;
    my $doc = node_doc() or return 0;
    my ($w) = @{ $doc->{queues}{$queue}{workers} || [] };
    return $w && ($w->{job} // '') eq $id;
}
sub async_sleep {
    my ($queue, $ms) = @_;
    my $r = post_json("/async/$queue", qq({"ms":$ms}));
    is($r->{status}, 202, "an async $ms ms job on $queue: 202");
    return $r->{json}{id} // '';
}

# ---- node A runs a long job of each queue, and has read two more
my $dead_one = async_sleep('once', 4000);
my $warm = send_post('/sync/batch', '{"ms":600}');
ok(wait_until(sub { pending_jobs('batch') == 1 }, scaled(5), 'warm-up read'),
    'the batch worker runs a short job');
my $long = async_sleep('batch', 3000);
my $short = async_sleep('batch', 50);
my $sync = send_post('/sync/batch', '{"ms":50,"sync":1}');
ok(wait_until(sub { in_handler('batch', $long) && in_handler('once', $dead_one)
                    && pending_jobs('batch') == 3 }, scaled(5), 'batch read'),
    'node A runs a long job of each queue, two short ones read behind it, '
    . 'an async and a sync one');
is(read_answer($warm, scaled(5))->{status}, 200, 'the short job: 200');

# ---- A stops; B claims A's jobs
our @frozen = (sidecar_pid(), map { @$_ } values %{ worker_pids() });
END { kill 'CONT', @frozen if @frozen }     # whatever ends the test
kill 'STOP', @frozen;

my $dir = tmpdir();
my $conf_b = "$dir/node-b.conf";
spew($conf_b, "redis 127.0.0.1:" . redis_port() . ";\nnode_name other$$;\n"
    . "log $dir/node-b.log info;\nheartbeat 200ms;\n$queues");
spawn('node-b', "$dir/node-b.stderr", {}, build_path('offload-sidecar'),
    '-c', $conf_b);

ok(wait_until(sub { field($dead_one, 'status') eq 'dead' }, scaled(10),
    'dead-lettered'), 'the job of one attempt is dead-lettered by node B');
ok(wait_until(sub { field($short, 'status') eq 'done' }, scaled(10),
    'short job run again'), 'node B runs the job A had read and not run');
is(field($short, 'node'), "other$$", 'on node B');
# B's batch read both again, the long job first: it is done too
is(field($long, 'status'), 'done', 'node B ran the long job again');
my %dead_rec = @{ record($dead_one) };
my %short_rec = @{ record($short) };
my %long_rec = @{ record($long) };
is(scalar @{ stream_entries('offload:{once}:dead') }, 1, 'one dead letter');

# ---- A goes on
kill 'CONT', @frozen;
@frozen = ();                               # their pids may go to others
my $log = "$dir/sidecar.log";
my $claimed = qr/job \Q$short\E is no longer this worker's, not run/;
ok(wait_until(sub { slurp($log) =~ $claimed }, scaled(10), 'claimed seen'),
    'node A does not run the async job B claimed from its batch');
my $sync_answer = read_raw($sync, scaled(10));
like($sync_answer, qr{^HTTP/1\.1 200 }, 'the sync job is answered 200');
my ($sync_id) = $sync_answer =~ /^X-Offload-Job-Id: (\w+)/mi;
$sync_id //= 'none';
# B answered it: A may write its line later
ok(wait_until(sub { slurp($log)
    =~ /job \Q$sync_id\E is no longer this worker's, not run/ },
    scaled(10), 'sync claimed seen'), 'nor the sync one');
# "... found a result stored under their ids already, kept, ..."
my $kept = qr/ stored under (?:its|their) ids? already.* kept/;
ok(wait_until(sub { slurp($log) =~ /\bonce:0: .*$kept/ }, scaled(10),
    'late end'), 'node A ends its run of the dead-lettered job late');
is_deeply({ @{ record($dead_one) } }, \%dead_rec,
    'its record is the dead letter\'s: status dead, its end time kept');
is(http('GET', "/jobs/$dead_one")->{json}{error}{reason}, 'node_lost',
    'GET /jobs/<id> tells the reason node_lost');
is(scalar @{ stream_entries('offload:{once}:dead') }, 1,
    'and there is still one dead letter');

# The long job ran on both nodes: A's run, which had started, ends late
# and changes nothing.
ok(wait_until(sub { slurp($log) =~ /\bbatch:0: .*$kept/ }, scaled(10),
    'second end'), 'node A\'s run of the long job ends late, its result not '
    . 'kept');
is_deeply({ @{ record($long) } }, \%long_rec,
    'and leaves the record as node B\'s end made it');
is_deeply({ @{ record($short) } }, \%short_rec,
    'the short job\'s record is as node B ended it');
is(pending_jobs($_), 0, "nothing pending on $_") for qw(once batch);

# ---- both nodes serve on
is(post_json('/sync/batch', '{"ms":1}')->{status}, 200, 'a new job: 200');
ok(!@{ events('crash') }, 'no crash anywhere');
is(stop_proc('node-b', scaled(10)), 0, 'node B exits 0');

# ---- a live node's batch longer than claim_idle/2 is checked, and runs
my $unrun = () = slurp($log) =~ /no longer this worker's/g;
my $busy = send_post('/sync/batch', '{"ms":1000}');
ok(wait_until(sub { pending_jobs('batch') == 1 }, scaled(5), 'busy'),
    'the batch worker is busy');
my $mon = RedisMonitor->start;
my @three = map { send_post('/sync/batch', qq({"ms":400,"n":$_})) } 1 .. 3;
ok(wait_until(sub { pending_jobs('batch') == 3 }, scaled(5), 'one batch'),
    'the three are read as one batch: the third runs 0.8 s after the read, '
    . 'past claim_idle/2');
is(read_answer($busy, scaled(5))->{status}, 200, 'its job: 200');
is(read_answer($_, scaled(10))->{status}, 200, 'a job of a 1.2 s batch: 200')
    for @three;
ok($mon->wait_for(sub { $_[0][1] eq 'XPENDING' && ($_[0][4] // '-') ne '-'
    && ($_[0][7] // '') =~ /:batch:0$/ }, scaled(5)),
    'the worker checked the batch was still its own (XPENDING of its '
    . 'consumer)');
is(scalar(() = slurp($log) =~ /no longer this worker's/g), $unrun,
    'and dropped none');

# ---- a run that fails for good after another run ended the job done (a
# late end came first): its record stays done, and it is no dead letter
my $hung = async_sleep('hang', 0);
ok(wait_until(sub { field($hung, 'status') eq 'running' }, scaled(5),
    'hang runs'), 'a job that hangs runs');
redis_cmd('HSET', record_key($hung), 'status', 'done', 'finished_at', 1);
ok(wait_until(sub { pending_jobs('hang') == 0 }, scaled(10), 'settled'),
    'its run, killed at its timeout, is settled');
is(field($hung, 'status'), 'done', 'the record stays done');
is(scalar @{ stream_entries('offload:{hang}:dead') }, 0, 'no dead letter');
finish();
