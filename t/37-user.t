#!/usr/bin/perl
# `user nobody;`: started as root, the sidecar becomes nobody once its log
# is open, before the first worker: the supervisor and every worker run as
# nobody (uid, gid, groups from initgroups), with NoNewPrivs set, and jobs,
# a reload (the config read again as nobody) and new workers still work.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

plan skip_all => 'needs root to switch users' if $> != 0;

my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
plan skip_all => 'no user nobody' unless defined $uid;

start_redis();
start_sidecar(conf => <<'CONF');
user nobody;
queue echo { handler echo; workers 2; }
CONF
ok(start_jobs_nginx(), 'stack ready');

# Uid/Gid: real, effective, saved, filesystem.  Groups: supplementary.
sub status_of {
    my ($pid) = @_;
    my %s = slurp("/proc/$pid/status") =~ /^(\w+):\s*(.*?)\s*$/mg;
    return \%s;
}

sub runs_as_nobody {
    my ($pid, $what) = @_;
    my $s = status_of($pid);
    is($s->{Uid}, join("\t", ($uid) x 4), "$what (pid $pid): uid nobody");
    is($s->{Gid}, join("\t", ($gid) x 4), "$what: gid nobody's group");
    is($s->{Groups}, $gid, "$what: groups: nobody's own (initgroups), "
        . "none of root's");
    is($s->{NoNewPrivs}, 1, "$what: NoNewPrivs 1");
}

runs_as_nobody(sidecar_pid(), 'supervisor');
my @workers = @{ worker_pids()->{echo} };
is(scalar @workers, 2, 'two workers');
runs_as_nobody($_, 'worker') for @workers;

my $log = tmpdir() . '/sidecar.log';
is((stat $log)[4], $uid, 'the log file belongs to nobody');
like(slurp($log), qr/running as user "nobody" \(uid $uid, gid $gid\)/,
    'the switch is logged');

for my $i (1 .. 4) {
    my $r = post_json('/jobs/echo', { n => $i });
    is($r->{status}, 200, "echo job $i as nobody");
    is_deeply($r->{json}, { n => $i }, "echo job $i answer");
}

# A reload reads the config again as nobody; its new workers are nobody's.
my $conf = sidecar_conf_file();
spew($conf, slurp($conf) =~ s/workers 2;/workers 3;/r);
kill 'HUP', sidecar_pid();
ok(wait_until(sub {
    my $pids = worker_pids()->{echo} or return 0;
    my %old = map { $_ => 1 } @workers;
    @$pids == 3 && !grep { !$_ || $old{$_} } @$pids;
}, scaled(20), 'three new workers'), 'reload as nobody: three new workers');
runs_as_nobody($_, 'new worker') for @{ worker_pids()->{echo} };
is(post_json('/jobs/echo', { after => 'reload' })->{status}, 200,
    'jobs after the reload');
unlike(slurp($log), qr/reload refused/, 'the reload was not refused');

# -t: a user that does not exist is an error with file:line.
my $bad = tmpdir() . '/bad-user.conf';
spew($bad, "redis 127.0.0.1:1;\nnode_name x;\n\nuser no-such-user-x;\n"
    . "queue echo { handler echo; }\n");
my $sidecar = build_path('offload-sidecar');
my $out = `$sidecar -t -c $bad 2>&1`;
isnt($? >> 8, 0, '-t fails on an unknown user');
like($out, qr/^\Q$bad\E:4: unknown user "no-such-user-x" in "user"$/m,
    '-t names the file and line') or diag($out);

finish();
