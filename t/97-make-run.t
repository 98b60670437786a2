#!/usr/bin/perl
# `make run` (conf/run) leaves no process behind: started in a real
# terminal (tmux) with its stdout piped to `tee`, as a developer would, it
# answers an echo job; then a Ctrl-C, a SIGTERM, a closed terminal, a
# Ctrl-C or SIGTERM after tee died, or a SIGKILL of the script must stop
# redis-server, the sidecar and nginx (and their children) within a
# deadline.  conf/run is started directly with BUILD set, which skips
# make's deps and build steps; one Ctrl-C case goes through `make run` to
# cover make in between.  Each case has its own port and run directory
# (RUNDIR), so it never meets a developer's `make run` or another test.
# As root, two cases run from a copy of the checkout under a 0700
# directory, as a checkout under /root is: the run still serves jobs (the
# files nginx's workers open are in a private directory they can reach),
# says where its files are, and leaves nothing behind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use File::Path qw(make_path);
use File::Spec;
use HTTP::Tiny;
use Time::HiRes qw(time);
use OffloadTest;

plan skip_all => 'tmux is not installed' unless -x '/usr/bin/tmux';
# conf/run starts stock nginx as make run does, without the sanitizer
# runtime an ASan-built module needs; the script's signal handling under
# test is the same for both builds
plan skip_all => 'make run serves the plain build' if sanitize();

my $repo = abs_path("$FindBin::Bin/..");
my $build = build_path();
for my $f ('ngx_http_offload_module.so', 'offload-sidecar') {
    plan skip_all => "$build/$f is missing (make first)" unless -e "$build/$f";
}
my $tmux = 'tmux -f /dev/null -S ' . tmpdir() . '/tmux.sock';

# The pids of the processes of the run in $rundir: the script, redis, the
# sidecar and nginx, each with its children (workers, the log taggers).
sub run_procs {
    my ($rundir) = @_;
    my (%p, %parent, @sidecars, @redis);
    for (split /\n/, `ps -eo pid=,ppid=,args=`) {
        my ($pid, $ppid, $args) = /^\s*(\d+)\s+(\d+)\s+(.*)$/ or next;
        $parent{$pid} = $ppid;
        # redis-server's title names its socket, maybe not in $rundir
        push @redis, $pid if $args =~ /^redis-server /;
        next if index($args, "$rundir/") < 0;
        $p{nginx} = $pid if $args =~ /^nginx: master process /;
        push @sidecars, $pid if $args =~ m{/offload-sidecar -c };
    }
    return () unless $p{nginx};
    $p{script} = $parent{$p{nginx}};
    # the redis-server the script started
    ($p{redis}) = grep { $parent{$_} == $p{script} } @redis;
    return () unless $p{redis};
    # the sidecar's workers are forks with its command line: it is the one
    # the script started
    ($p{sidecar}) = grep { $parent{$_} == $p{script} } @sidecars;
    return () unless $p{sidecar};
    $p{children} = [ map { child_pids($_) } @p{qw(redis sidecar nginx)} ];
    return %p;
}

sub echo_answers {
    my ($port) = @_;
    my $r = HTTP::Tiny->new(timeout => 5)->request('POST',
        "http://127.0.0.1:$port/jobs/echo",
        { content => '{"ping":1}',
          headers => { 'content-type' => 'application/json' } });
    return $r->{status} == 200 && $r->{content} =~ /"ping":\s*1/;
}

# The pids of the children named $name of the shell in the tmux pane.
sub pane_children {
    my ($name) = @_;
    my ($pane) = `$tmux list-panes -F '#{pane_pid}' 2>/dev/null` =~ /(\d+)/
        or return ();
    return map { /^\s*(\d+)\s+\Q$name\E$/ ? $1 : () }
        split /\n/, `ps --ppid $pane -o pid=,comm=`;
}

# A zombie (not reaped yet) counts as gone.
sub running {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat");
    return $stat ne '' && $stat !~ /^\d+ \(.*\) Z /s;
}

# One case: start the run in tmux (`| tee`), wait for an echo answer, do
# $stop->(\%procs), and check that every process of the run is gone.
# Options: make (through `make run`, with that build directory), repo and
# build (run another checkout), rundir (the run directory the script uses
# by itself, $BUILD/run: RUNDIR is not set), up (called with the procs,
# the port and the log file once the run answers).
sub run_case {
    my ($name, $stop, %o) = @_;
    my $port = free_port();
    my $rundir = $o{rundir} // tmpdir() . "/run-$name";
    my $env = $o{rundir} ? '' : "RUNDIR=$rundir ";
    my $log = tmpdir() . "/$name.log";
    my $cmd = $o{make}
        ? "make -s run PORT=$port BUILD=$o{make}"
        : "PORT=$port BUILD=" . ($o{build} // $build) . ' conf/run';
    system('cd ' . ($o{repo} // $repo) . " && $tmux new-session -d -x 200 "
        . "-y 50 '$env$cmd | tee $log'") == 0 or die "tmux: $?";
    my %p;
    my $up = wait_until(sub {
        echo_answers($port) && (%p = run_procs($rundir));
    }, scaled($o{make} ? 60 : 20), "$name: the run answers an echo job");
    ok($up, "$name: redis, the sidecar and nginx run, an echo job is "
        . 'answered') or diag(slurp($log));
    like(slurp($log), qr/^run: listening on /m,
        "$name: the script's own line reached tee") if $up;
    $o{up}->(\%p, $port, $log) if $up && $o{up};
    my @all = grep { defined } @p{qw(script redis sidecar nginx)},
        @{ $p{children} // [] };
    if ($up) {
        my $t0 = time;
        $stop->(\%p);
        my $gone = wait_until(sub {
            !grep { running($_) } @all;
        }, scaled(20), "$name: every process of the run exits");
        ok($gone, "$name: redis-server, the sidecar and nginx stopped, "
            . 'with their children, and the script exited')
            or diag("left: " . join(' ', grep { running($_) } @all)
                . "\n" . `ps -o pid,ppid,args -p ${\ join(',', @all)}`);
        note(sprintf '%s: %d processes gone %.2f s after the stop',
            $name, scalar @all, time - $t0) if $gone;
    }
    # leave nothing for the next case, whatever happened
    system("$tmux kill-server 2>/dev/null");
    kill 'KILL', grep { running($_) } @all;
    my @stray = map { /^\s*(\d+)\s.*\Q$rundir\E\// ? $1 : () }
        split /\n/, `ps -eo pid=,args=`;
    kill 'KILL', @stray, map { child_pids($_) } @stray;
}

# the run's nginx serves an async job's status_url (before: conf/nginx.conf
# had no offload_jobs location, and README's async example got 404)
run_case('ctrl-c', sub {
    system("$tmux send-keys C-c");
}, up => sub {
    my (undef, $port) = @_;
    my $http = HTTP::Tiny->new(timeout => 10);
    my $r = $http->request('POST', "http://127.0.0.1:$port/jobs/echo",
        { content => '{"later":1}', headers => {
            'content-type' => 'application/json',
            prefer => 'respond-async' } });
    is($r->{status}, 202, 'ctrl-c: an async echo job: 202');
    my ($url) = ($r->{content} // '') =~ /"status_url":"([^"]+)"/;
    $r = $http->get("http://127.0.0.1:$port" . ($url // '/none') . '?wait=5');
    is($r->{status}, 200, "ctrl-c: its status_url ($url) answers 200");
    like($r->{content}, qr/"status":"done".*"later":1/s, '... done, with '
        . 'its result');
});

run_case('sigterm', sub {
    kill 'TERM', $_[0]{script};
});

# a closed terminal: the pty goes away, the shell in it gets SIGHUP
run_case('closed-terminal', sub {
    system("$tmux kill-session");
});

# stdout is a pipe whose reader is gone (a Ctrl-C kills tee too, and
# may do so before the script writes), then Ctrl-C or SIGTERM
sub kill_tee {
    my ($name) = @_;
    my ($tee) = pane_children('tee');
    ok($tee && kill('TERM', $tee), "$name: tee killed");
    ok(wait_until(sub { !running($tee) }, scaled(5), 'tee exits'),
        "$name: tee gone");
}

run_case('tee-dead-ctrl-c', sub {
    kill_tee('tee-dead-ctrl-c');
    system("$tmux send-keys C-c");
});

run_case('tee-dead-sigterm', sub {
    kill_tee('tee-dead-sigterm');
    kill 'TERM', $_[0]{script};
});

run_case('sigkill', sub {
    kill 'KILL', $_[0]{script};
});

# As root with the checkout under /root (0700): user nobody, nginx's
# workers, cannot reach build/run.  A copy of what conf/run needs (conf/,
# the module, the sidecar) under a 0700 directory stands for it.
SKIP: {
    skip 'a checkout nginx\'s workers cannot reach: as root only', 16
        if $> != 0;
    my $home = tmpdir() . '/root';
    my $copy = "$home/offload";
    make_path("$copy/build");
    chmod 0700, $home or die "chmod $home: $!";
    system('cp', '-a', "$repo/conf", $copy) == 0
        && system('cp', '-a', "$build/ngx_http_offload_module.so",
            "$build/offload-sidecar", "$copy/build") == 0
        or die "copying the checkout failed\n";
    isnt(system('runuser', '-u', 'nobody', '--', 'test', '-x',
        "$copy/build"), 0, 'user nobody cannot reach the copy (0700)');
    my $rundir = "$copy/build/run";
    my %o = (repo => $copy, build => "$copy/build", rundir => $rundir);
    my $shared_of = sub {
        slurp($_[0]) =~ m{^run: Redis socket, nginx temp files: (/\S+)}m
            ? $1 : undef;
    };

    # killed by SIGKILL, the script leaves its private directory ...
    my $left;
    run_case('root-0700-sigkill', sub { kill 'KILL', $_[0]{script} }, %o,
        up => sub { $left = $shared_of->($_[2]) });
    ok($left && -d $left, 'root-0700-sigkill: the run named its private '
        . 'directory, which the SIGKILL left') or diag($left // 'none');

    # ... the next run removes it and makes its own
    my $shared;
    run_case('root-0700', sub { system("$tmux send-keys C-c") }, %o,
        up => sub {
        my ($p, $port, $log) = @_;
        my $text = slurp($log);
        like($text, qr/^run: files: \Q$rundir\E /m,
            'root-0700: the run says where its files are');
        like($text, qr/^run: logs: /m, 'root-0700: and its logs');
        $shared = $shared_of->($log);
        like($shared // '', qr{^/tmp/offload-run\.\w+$},
            'root-0700: the Redis socket and the temp files are in a '
            . 'private directory under /tmp');
        ok($left && !-e $left, 'root-0700: the one the killed run left '
            . 'is gone');
        my @st = stat($shared // '');
        is(sprintf('%04o/%s/%s', ($st[2] // 0) & 07777, $st[4] // '',
            $st[5] // ''), '0710/0/' . scalar(getgrnam('nogroup')),
            'root-0700: it is root\'s, mode 0710, group nogroup');
        # the echo job above went through them and the socket in it
        my @users = map { /^\s*(\S+)\s+nginx: worker process/ ? $1 : () }
            `ps -o user=,args= --ppid $p->{nginx}`;
        ok(@users && !grep({ $_ ne 'nobody' } @users),
            'root-0700: nginx\'s workers still run as nobody')
            or diag("@users");
        ok(-l "$rundir/redis.sock"
            && `redis-cli -s $rundir/redis.sock ping` =~ /^PONG/,
            'root-0700: redis-cli -s build/run/redis.sock still works');
    });
    ok($shared && !-e $shared && !-l "$rundir/redis.sock",
        'root-0700: the private directory and the link to its socket are '
        . 'gone when the run stops');
}

SKIP: {
    my $rel = File::Spec->abs2rel($build, $repo);
    skip 'make run builds into the default build directory only', 3
        if $rel ne 'build';
    run_case('make-ctrl-c', sub {
        system("$tmux send-keys C-c");
    }, make => $rel);
}

done_testing();
