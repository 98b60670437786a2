#!/usr/bin/perl
# SIGHUP to the sidecar: the configuration is read again; a bad one is
# refused (logged, event reload_failed) and the old one keeps serving; a
# good one replaces the workers one at a time, so a steady load sees zero
# failed requests, and the new settings take effect (here: more workers, a
# new queue, a removed queue).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
queue echo { handler echo; workers 2; prefetch 4; }
queue sleep { handler sleep; workers 1; }
queue old { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');

my $file = sidecar_conf_file();
my $log = tmpdir() . '/sidecar.log';
my $conf = slurp($file);

# ---- a bad configuration is refused, the old one keeps running
my $before = worker_pids();
spew($file, $conf . "queue broken { handler nosuch; }\n");
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload_failed') } == 1 }, 10,
    'reload_failed event'), 'a bad config: reload_failed event');
like(events('reload_failed')->[0]{report}{error}, qr/unknown handler "nosuch"/,
    'naming the error');
like(slurp($log), qr/reload refused, the running configuration stays/,
    'logged');
is_deeply(worker_pids(), $before, 'no worker was touched');
is(post_json('/jobs/echo', { after => 'bad reload' })->{status}, 200,
    'still serving');

# ---- node_name cannot change on reload
(my $renamed = $conf) =~ s/node_name \S+;/node_name other;/;
spew($file, $renamed);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { @{ events('reload_failed') } == 2 }, 10,
    'second reload_failed'), 'a new node_name is refused');

# ---- a good one under load: zero failed requests
(my $new = $conf) =~ s/(queue echo \{ handler echo; workers) 2;/$1 3;/;
$new =~ s/queue old \{[^}]*\}\n/queue fresh { handler echo; workers 1; }\n/;
spew($file, $new);

# The load runs in batches until told to stop (at most 60 s), recording
# after each batch how many requests it made, how many failed, and when.
my $dir = tmpdir();
my $loader = fork // die "fork: $!";
if ($loader == 0) {
    my ($n, $bad, $until) = (0, 0, time + 60);
    while (!-e "$dir/stop" && time < $until) {
        my @res = concurrent_posts(8, 10, sub { json_encode({ c => $_[0],
            j => $_[1] }) }, path => '/jobs/echo', timeout => scaled(30));
        $n += @res;
        $bad += grep { $_->{status} != 200
            || ($_->{content} // '') ne $_->{body} } @res;
        spew("$dir/progress.tmp", sprintf "%d %d %.6f\n", $n, $bad, time);
        rename "$dir/progress.tmp", "$dir/progress";
    }
    POSIX::_exit(0);
}
sub progress { split ' ', slurp("$dir/progress") || '0 0 0' }

ok(wait_until(sub { (progress())[0] > 0 }, 10, 'load running'),
    'load is running');
my ($before_n) = progress();

# The node's counters, per worker slot, as the registry says them (which
# offload_metrics serves as counters): they never go back over a reload.
# (Before, each new slot started from 0: the rolled-over slots' jobs_ok,
# restarts... dropped to 0 though the node kept running.)
my %seen;           # "queue/slot/field" => [ values in turn ]
sub sample_counts {
    my $doc = node_doc() or return;
    for my $q (keys %{ $doc->{queues} || {} }) {
        for my $w (@{ $doc->{queues}{$q}{workers} || [] }) {
            for my $f (qw(jobs_ok jobs_failed jobs_crashed restarts)) {
                my $series = $seen{"$q/$w->{slot}/$f"} //= [];
                push @$series, $w->{$f}
                    if !@$series || $series->[-1] != $w->{$f};
            }
        }
    }
}
ok(wait_until(sub { sample_counts(); my $d = node_doc();
        $d && $d->{queues}{echo}{workers}[1]{jobs_ok} > 0 }, 10,
    'counted'), 'both echo workers counted jobs');
kill 'HUP', sidecar_pid();
ok(wait_until(sub { sample_counts(); @{ events('reload') } == 1 },
    scaled(30), 'reload done'), 'the reload rolled through')
    or diag(slurp($log));
my $reloaded = time;
ok(wait_until(sub { (progress())[2] > $reloaded }, 10, 'load after reload'),
    'the load went on after the reload');
spew("$dir/stop", '');
waitpid($loader, 0);

my ($done, $failed) = progress();
ok($done > $before_n, "the load spanned the reload: $before_n requests "
    . "before the SIGHUP, $done in all");
is($failed, 0, 'none failed during the reload');
ok(wait_until(sub { sample_counts(); my $d = node_doc();
        my $ok = 0; $ok += $_->{jobs_ok} for @{ $d->{queues}{echo}{workers} };
        $ok >= $done }, 10, 'all counted'),
    "the echo workers' jobs_ok add up to at least the $done requests");
my @back = grep { my $v = $seen{$_};
    grep { $v->[$_] < $v->[$_ - 1] } 1 .. $#$v } sort keys %seen;
is_deeply(\@back, [], 'no counter of a worker slot went back')
    or diag(join "\n", map { "$_: @{ $seen{$_} }" } @back);
is($seen{'echo/0/restarts'}[-1], $seen{'echo/0/restarts'}[0],
    'a worker replaced by the reload is no restart');

my $after;
ok(wait_until(sub { $after = worker_pids();
    3 == grep { $_ } @{ $after->{echo} || [] } }, 5, 'registry updated'),
    'echo has 3 workers now');
ok(!(grep { my $p = $_; grep { $_ == $p } @{ $before->{echo} } }
    @{ $after->{echo} }), 'every echo worker was replaced');
isnt($after->{sleep}[0], $before->{sleep}[0], 'the sleep worker too');
ok(!exists $after->{old}, 'queue old is gone');
ok($after->{fresh} && $after->{fresh}[0], 'queue fresh is served');
is(post_json('/jobs/fresh', { hello => 1 })->{status}, 200,
    'and answers');
like(slurp($log), qr/reloading .*reload done/s, 'logged');

# ---- a new heartbeat takes effect: the node document (its lifetime 3
# heartbeats, 5 s at least) is written every 2 s, no longer every 200 ms
# (before, the timer kept its period: a lowered heartbeat let the document
# expire between writes, a raised one skewed the jobs/s).  And a pool made
# smaller keeps what its slots did: echo's three slots' jobs go to its one.
sub echo_ok { my $d = node_doc() or return -1; my $n = 0;
    $n += $_->{jobs_ok} for @{ $d->{queues}{echo}{workers} }; $n }
my $echo_ok = echo_ok();
my $reloads = () = slurp($log) =~ /reload done/g;
spew($file, "heartbeat 2s;\n" . ($new =~ s/^heartbeat .*\n//mr
    =~ s/(queue echo \{ handler echo; workers) 3;/$1 1;/r));
kill 'HUP', sidecar_pid();
ok(wait_until(sub { my $n = () = slurp($log) =~ /reload done/g;
                    $n > $reloads }, scaled(30), 'heartbeat reload'),
    'a reload to heartbeat 2s, and one echo worker');
ok(wait_until(sub { my $d = node_doc();
        $d && @{ $d->{queues}{echo}{workers} } == 1 }, scaled(8), 'one'),
    'echo has one worker');
ok(echo_ok() >= $echo_ok, "its slot counts the $echo_ok jobs of three");
my $node_key = 'offload:{ctl}:node:' . node_name();
ok(wait_until(sub { (redis_cmd('PTTL', $node_key) // 6000) < 5000 },
    scaled(8), 'the document ages'),
    'the node document ages 1 s past a write: written every 2 s');

finish();
