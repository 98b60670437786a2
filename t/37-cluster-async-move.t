#!/usr/bin/perl
# Async jobs submitted while their queue's slot moves between masters of a
# real Redis Cluster (t/lib/ClusterTopology.pm): the slot held MIGRATING on
# its source, then its keys moved, then given to the target.  The submit
# script declares every key it touches (the record, the stream, the
# idempotency key), so Redis answers it whole: ASK to the target once the
# keys moved, TRYAGAIN while some are on the source and some not (a new
# record is on neither).  Every submit is answered 202, or 503 with
# Retry-After, never 404 unknown_queue (the stream looked for on the
# target before it arrived), and every job answered 202 ends done.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use OffloadTest;
use ClusterTopology;

my $cl = start_cluster_topology(masters => 3);
my $ctl = $cl->owner_port('ctl');
my ($from, $to) = grep { $_ != $ctl } $cl->master_ports;
my $q = $cl->queue_on($from);
ok($q, "queue $q on $from, moving to $to");
redis_use($ctl);

start_sidecar(redis => $cl->url, want => { $q => 1 },
    conf => "queue $q { handler echo; }\n");
start_nginx(http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ $cl->url};
    offload_timeout 60s;
    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }
    location ~ ^/async/([^/]+)\$ { offload_pass \$1; offload_mode async; }
    location /jobs/ { offload_jobs; }
}
HTTP
ok(wait_nginx_ready("/sync/$q", '{}'), 'nginx answers through the cluster');

# the move, in a child: MIGRATING held 3 s, then the keys, then the owner
my $dir = tmpdir();
my $slot = $cl->slot_of($q);
my $mover = fork() // die "fork: $!";
if ($mover == 0) {
    my $ok = eval { $cl->move_slot($slot, $to, hold => scaled(3)); 1 };
    spew("$dir/move.done", $ok ? 'ok' : "failed: $@");
    POSIX::_exit(0);
}

my (@accepted, @other, $busy);
my ($n, $until) = (0, time + scaled(60));
# after the move, until a job is accepted (under ASan the whole loop can
# fall inside the move)
while ((!-e "$dir/move.done" || $n < 10 || !@accepted) && time < $until) {
    $n++;
    my $r = http('POST', "/async/$q", qq({"n":$n}),
        $n % 3 ? {} : { 'Idempotency-Key' => "move-$n" });
    if ($r->{status} == 202 && ($r->{json}{id} // '') =~ /^[0-9a-f]{32}$/) {
        push @accepted, [ $r->{json}{id}, $n ];
    } elsif ($r->{status} == 503 && $r->{headers}{'retry-after'}) {
        $busy++;
        select(undef, undef, undef, 0.01);
    } else {
        push @other, "$r->{status} $r->{content}";
    }
}
waitpid($mover, 0);
is(slurp("$dir/move.done"), 'ok', "slot $slot moved from $from to $to");
is($cl->slot_owner($slot), $to, 'the target owns it');
ok($n >= 10, "$n submits during the move ("
    . scalar(@accepted) . ' accepted, ' . ($busy // 0) . ' 503)');
is_deeply(\@other, [], 'each answered 202, or 503 with Retry-After')
    or diag(explain([ @other[0 .. ($#other < 9 ? $#other : 9)] ]));
ok(@accepted > 0, 'jobs were accepted');

my @late;
for my $job (@accepted) {
    my ($id, $i) = @$job;
    my $doc;
    wait_until(sub {
        $doc = http('GET', "/jobs/$id")->{json};
        $doc && ($doc->{status} // '') =~ /^(?:done|failed|dead|expired)$/;
    }, scaled(20), "job $id");
    push @late, "$id: " . ($doc ? ($doc->{status} // '?') : 'no answer')
        unless $doc && ($doc->{status} // '') eq 'done'
            && ($doc->{result}{n} // 0) == $i;
}
is_deeply(\@late, [], 'every job accepted ends done, with its result');

my $r = post_json("/async/$q", { after => 1 });
is($r->{status}, 202, 'a job after the move: 202');
unlike(slurp(nginx_error_log()), qr/\[(?:alert|crit|emerg)\]/,
    'no alert in the error log');

done_testing();
