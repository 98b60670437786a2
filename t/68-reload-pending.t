#!/usr/bin/perl
# A SIGHUP while the previous reload still rolls (a retired worker in a
# long job) is not lost: the file is read again once that reload is done,
# and what it says runs (an operator who edits twice in a row, or a
# deploy's two reloads, gets the second file; systemctl reload said yes to
# both).  (Before: refused, "the previous reload is still rolling", a
# reload_failed event, and the file on disk and the running configuration
# disagreed until someone sent SIGHUP again.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis();
start_sidecar(conf => <<'CONF');
shutdown_timeout 10s;
queue sleep { handler sleep; workers 1; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');
my $file = sidecar_conf_file();
my $conf = slurp($file);

sub echo_workers { scalar grep { $_ } @{ worker_pids()->{echo} || [] } }

# a job that keeps the sleep worker, retired by the first reload, busy
my $s = send_post('/jobs/sleep', '{"ms":6000}');
ok(wait_until(sub { pending_jobs('sleep') == 1 }, scaled(10), 'sleep runs'),
    'a long job runs');

(my $two = $conf) =~ s/(queue echo \{ handler echo; workers) 1/$1 2/;
spew($file, $two);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log') =~ /reloading/ },
    scaled(10), 'first reload'), 'a first reload rolls');

(my $three = $conf) =~ s/(queue echo \{ handler echo; workers) 1/$1 3/;
spew($file, $three);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log')
        =~ /reload asked while the previous one rolls/ },
    scaled(10), 'said'), 'a second SIGHUP meanwhile is taken for later');

is(read_answer($s, scaled(20))->{status}, 200, 'the long job is answered');
ok(wait_until(sub { @{ events('reload') } == 2 }, scaled(20),
    'both reloads done'), 'both reloads are done');
is(scalar @{ events('reload_failed') }, 0, 'none refused');
ok(wait_until(sub { echo_workers() == 3 }, scaled(10), 'three workers'),
    'the second file runs: echo has 3 workers');
is(post_json('/jobs/echo', '{"n":1}')->{status}, 200, 'and serves');

finish();
