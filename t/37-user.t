#!/usr/bin/perl
# `user nobody;`: started as root, the sidecar becomes nobody once its log
# is open, before the first worker: the supervisor and every worker run as
# nobody (uid, gid, groups from initgroups), with NoNewPrivs set, and jobs,
# a reload (the config read again as nobody) and new workers still work.
# Started as root, it opens its log as the user, or as root only on a
# path only root could have arranged, so a link the user made leads root
# nowhere; started as the
# user, its processes are not dumpable (an exec handler's process, the same
# user, cannot read their memory); offloadctl replay as root runs the
# handler as the user.

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

# ---- the log's folder is the user's (/var/log/offload): the log is
# opened as the user, so a link there to a file of root's is neither
# written by root nor given to the user; nor is a link to the user's
# folder from root's, where the user may put another link
my $dir = tmpdir();
my $vlog = "$dir/vlog";
mkdir $vlog or die "mkdir $vlog: $!";
chown $uid, $gid, $vlog;
my $victim = "$dir/victim";
spew($victim, "root's own\n");
chmod 0600, $victim;
symlink $victim, "$vlog/sidecar.log" or die "symlink: $!";
link $victim, "$vlog/hard.log" or die "link: $!";
mkdir "$dir/rootdir" or die "mkdir: $!";
symlink "$dir/rootdir", "$vlog/logs" or die "symlink: $!";
symlink "$victim", "$vlog/target.log" or die "symlink: $!";
symlink "$vlog/target.log", "$dir/rootdir/led.log" or die "symlink: $!";
# a hard link to root's file in a folder only root may write (left there
# while the folder was the user's): root makes a log only new, never takes
# one that is there
link $victim, "$dir/rootdir/left.log" or die "link: $!";
my $sidecar = build_path('offload-sidecar');
my $as_user = qr/Permission denied \(started as root, the sidecar opens its /
    . qr/log as user "nobody"/;
for my $case ([ 'a symbolic link', "$vlog/sidecar.log" ],
              [ 'a hard link', "$vlog/hard.log" ],
              [ 'a folder on the way that is a link', "$vlog/logs/s.log" ],
              [ 'a link from root\'s folder to the user\'s',
                "$dir/rootdir/led.log" ],
              [ 'a hard link in root\'s folder', "$dir/rootdir/left.log" ]) {
    my ($what, $path) = @$case;
    my $conf_file = "$dir/linked.conf";
    spew($conf_file, "redis 127.0.0.1:${\ redis_port()};\nnode_name linked;\n"
        . "user nobody;\nlog $path;\nqueue echo { handler echo; }\n");
    my $out = `timeout 10 $sidecar -c $conf_file 2>&1`;
    is($? >> 8, 1, "the log $what to root's file: the start fails")
        or diag($out);
    like($out, qr/cannot open log "\Q$path\E": $as_user/,
        '... saying why') or diag($out);
    $out = `$sidecar -t -c $conf_file 2>&1`;
    like($out, qr/cannot open log .*$as_user.*\n.*test failed/s,
        '... and so does -t') or diag($out);
}
my @st = stat $victim;
is_deeply([ @st[4, 5], $st[2] & 07777 ], [ 0, 0, 0600 ],
    "root's file still root's, mode 0600");
is(slurp($victim), "root's own\n", '... and untouched');
ok(!-e "$dir/rootdir/s.log", 'nothing made in the folder of root\'s '
    . 'a link of the user\'s led to');

# -t: a user that does not exist is an error with file:line.
my $bad = tmpdir() . '/bad-user.conf';
spew($bad, "redis 127.0.0.1:1;\nnode_name x;\n\nuser no-such-user-x;\n"
    . "queue echo { handler echo; }\n");
my $out = `$sidecar -t -c $bad 2>&1`;
isnt($? >> 8, 0, '-t fails on an unknown user');
like($out, qr/^\Q$bad\E:4: unknown user "no-such-user-x" in "user"$/m,
    '-t names the file and line') or diag($out);

# -t and a start as root in a user namespace that may not set groups (as
# `unshare -r` makes): the log cannot be opened as the user, and the error
# says which call failed (was: an abort, trying to set root's groups back)
SKIP: {
    skip 'no user namespaces here', 6
        if system('unshare -r true >/dev/null 2>&1') != 0;
    my $ns_conf = "$dir/ns.conf";
    spew($ns_conf, "redis 127.0.0.1:1;\nnode_name ns;\nuser nobody;\n"
        . "log $dir/ns.log;\nqueue echo { handler echo; }\n");
    my $why = 'cannot act as user "nobody" to open the log: '
        . 'initgroups() failed: Operation not permitted';
    for my $t ('-t ', '') {
        my $out = `timeout 10 unshare -r $sidecar $t-c $ns_conf 2>&1`;
        is($? >> 8, 1, "sidecar $t-c in such a namespace: exit 1")
            or diag($out);
        like($out, qr/\Q$why\E/, '... naming the call') or diag($out);
        unlike($out, qr/cannot open log/, '... not blaming the log');
    }
}

# ---- an exec handler's process runs as the sidecar's user: it may not
# read its worker's memory (the Redis password), nor the supervisor's,
# started as that user (as root, the switch already forbids it)
my $peek = "$dir/peek.pl";
spew($peek, <<'PERL');
$| = 1;
while (my $line = <STDIN>) {
    my ($id) = $line =~ /"id":"(\w+)"/;
    my $read = open(my $f, '<', '/proc/' . getppid() . '/environ')
        ? 'read' : 'denied';
    print qq({"id":"$id","result":{"uid":$<,"worker_environ":"$read"}}\n);
}
PERL
chmod 0755, $peek;
my $peek_conf = "queue peek { handler exec; workers 1;"
    . " command \"/usr/bin/perl $peek\"; }\n";
is(stop_sidecar(), 0, 'the sidecar stops');
start_sidecar(conf => $peek_conf, wrapper => [ 'setpriv', "--reuid=$uid",
    "--regid=$gid", '--init-groups', '--' ]);
runs_as_nobody(sidecar_pid(), 'supervisor started as nobody');
ok(wait_until(sub { redis_cmd('EXISTS', 'offload:{peek}:jobs') },
    scaled(10), 'peek served'), 'the exec queue served');
my $r = post_json('/jobs/peek', {});
is_deeply($r->{json}, { uid => $uid, worker_environ => 'denied' },
    "the handler's process (nobody) cannot read its worker's memory")
    or diag($r->{content});
for my $pid (sidecar_pid(), @{ worker_pids()->{peek} }) {
    is((stat "/proc/$pid/environ")[4], 0, "pid $pid is not dumpable (its "
        . '/proc files are root\'s)');
}

# ---- offloadctl replay as root runs the handler as the user, as a worker
# would: never a payload anyone could submit as root
my $now = int(time * 1000);
redis_cmd('XADD', 'offload:{peek}:dead', '*', v => 1, id => 'b' x 32,
    payload => '{}', reply => 'offload:reply:none', deadline => $now + 30000,
    submitted => $now, attempt => 1, rid => '', reason => 'signal',
    dead_at => $now);
my $replay_conf = "$dir/replay.conf";
spew($replay_conf, "redis 127.0.0.1:${\ redis_port()};\nuser nobody;\n"
    . $peek_conf);
my $ctl = build_path('offloadctl');
$out = `$ctl -c $replay_conf replay ${\ ('b' x 32)} 2>&1`;
is($? >> 8, 0, 'offloadctl replay as root: exit 0') or diag($out);
like($out, qr/"uid":$uid\b/, '... the handler ran as nobody') or diag($out);

finish();
