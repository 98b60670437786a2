#!/usr/bin/perl
# A script sent by nginx to the importing node of a slot's migration,
# which never loaded it: the old master answers the EVALSHA with ASK, the
# importing node the EVALSHA (after ASKING) with NOSCRIPT, and the EVAL
# sent again must carry ASKING again (ASKING covers the next command
# alone), or the importing node answers MOVED back to the old master and
# every job spends its redirects while the slot moves.  Two scripts: a
# GET /jobs/<id> (the job script) and a sync job under offload_max_backlog
# (the admission script).  Each must go ASK, then the EVAL there: no MOVED
# in between.  An async submit (the submit script, several keys) is
# answered TRYAGAIN meanwhile: 503 with Retry-After.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my $ctl = $cl->control_port;
my ($from, $to) = $cl->other_masters;
my $q = $cl->queue_on($from);
ok($q, "queue $q on $from, the control shard on $ctl");

ok($cl->start_offload(echo => [ $q ], level => 'info', workers => 1,
    ready => [ '/sync', '{}' ], server => <<"LOCATIONS"),
    offload_timeout 60s;
    location = /sync { offload_pass $q; offload_max_backlog 1000; }
    location = /async { offload_pass $q; offload_mode async; }
    location /jobs/ { offload_jobs; }
LOCATIONS
    'nginx answers through the cluster');

my $r = post_json('/async', { first => 1 });
is($r->{status}, 202, 'an async job accepted');
my $id = $r->{json}{id} // '';
my $doc;
ok(wait_until(sub {
    $doc = http('GET', "/jobs/$id")->{json};
    ($doc->{status} // '') eq 'done';
}, scaled(10), 'the job done'), "job $id done");

# the slot half moved: every key on $to, the slot still $from's; $to has
# none of nginx's scripts
my $slot = $cl->slot_of($q);
$cl->begin_move_slot($slot, $to);
sub moved_to {
    my $keys = $cl->cmd($to, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    return scalar grep { $_ eq $_[0] } @{ ref $keys eq 'ARRAY' ? $keys : [] };
}
ok(moved_to(record_key($id)), "its record moved to $to");

sub flushed {
    is($cl->cmd($to, 'SCRIPT', 'FLUSH'), 'OK', "$to forgot its scripts");
}

sub asked_without_moved {
    my ($what, $re) = @_;
    my $log = slurp(nginx_error_log());
    like($log, qr/$re: ASK $slot \S+:$to, sent to \S+:$to\b/,
        "$what: followed ASK to $to");
    unlike($log, qr/$re: MOVED /, "$what: no MOVED back from $to");
}

# ---- the job script: GET /jobs/<id>
flushed();
$r = http('GET', "/jobs/$id");
is($r->{status}, 200, 'GET of the job whose record moved: 200');
is($r->{json}{status}, 'done', 'with its status');
asked_without_moved('the job script', qr/job $id read/);

# ---- the submit script: an async job.  It declares the stream and the
# record: Redis 7.0 answers a script of several keys TRYAGAIN while their
# slot moves (it would ASK only a command of one key), so nothing is added
# and the client is told to come back
flushed();
$r = post_json('/async', { second => 1 });
is($r->{status}, 503, 'an async job while its slot moves: 503');
is($r->{headers}{'retry-after'}, 1, '... with Retry-After: 1');
like(slurp(nginx_error_log()), qr/TRYAGAIN/, '... Redis said TRYAGAIN');

# ---- the admission script: a sync job, answered once the move ended
flushed();
my $s = send_post('/sync', '{"third":1}');
my $id3;
ok(wait_until(sub {
    my @ids = slurp(nginx_error_log()) =~ /job ([0-9a-f]{32}): ASK $slot /g;
    ($id3) = @ids;
    $id3;
}, scaled(10), 'the sync job followed ASK'), 'the sync job followed ASK');
$id3 //= '-';
asked_without_moved('the admission script', qr/job $id3/);

$cl->end_move_slot($slot, $to);
my $a = read_answer($s, scaled(30));
is($a->{status}, 200, 'the sync job answered 200 once the move ended')
    or diag($a->{content});
is($a->{json}{third} // 0, 1, 'with its own result');

done_testing();
