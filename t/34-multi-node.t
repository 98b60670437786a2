#!/usr/bin/perl
# Several machines on one Redis: two nginx (on 127.0.0.1 and 127.0.0.2)
# and three sidecar nodes (node-a, node-b, node-c: separate processes with
# their own configs).  Under load from both nginx, jobs spread over every
# node; node-b is SIGKILLed mid-load (supervisor and workers at once, as
# when its host dies) and nothing is lost: every request is answered with
# its own correct answer, and what node-b held is reclaimed by the other
# two.  offload_status of both nginx, the dashboard's data source and
# offloadctl status / top show the three nodes, and node-b gone once its
# registry entry's TTL ran out.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);
use OffloadTest;

my $dir = tmpdir();
my @nodes = qw(node-a node-b node-c);
my $victim = 'node-b';
my @survivors = grep { $_ ne $victim } @nodes;

start_redis();

# ---- three sidecar nodes, each its own process and config
my $queues = <<'CONF';
claim_idle 2s;
queue echo { handler echo; workers 1; prefetch 4; }
queue sleep { handler sleep; workers 2; prefetch 2; }
CONF
my $want = { echo => 1, sleep => 2 };

sub doc_of {
    my ($node) = @_;
    my $v = eval { redis_cmd('GET', "offload:{ctl}:node:$node") };
    return defined $v && !ref $v ? json_decode($v) : undef;
}

# node => { pid => supervisor pid, workers => [worker pids] } once every
# worker of the node is up, else undef
sub node_up {
    my ($node, $pid) = @_;
    my $doc = doc_of($node) or return undef;
    return undef unless ($doc->{pid} // 0) == $pid;
    my @workers;
    for my $q (keys %$want) {
        my @w = grep { $_ } map { $_->{pid} }
            @{ $doc->{queues}{$q}{workers} || [] };
        return undef if @w < $want->{$q};
        push @workers, @w;
    }
    return \@workers;
}

my %pid;
for my $node (@nodes) {
    my $conf = "$dir/$node.conf";
    spew($conf, "redis 127.0.0.1:" . redis_port() . ";\n"
        . "node_name $node;\nlog $dir/$node.log info;\n"
        . "heartbeat 200ms;\n$queues");
    my %env;
    $env{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=0' if sanitize();
    $pid{$node} = spawn($node, "$dir/$node.stderr", \%env,
        build_path('offload-sidecar'), '-c', $conf);
}
for my $node (@nodes) {
    ok(wait_until(sub {
        die "$node exited\n" unless alive($node);
        node_up($node, $pid{$node});
    }, scaled(15), "$node registered"), "$node is up with its workers")
        or diag(slurp("$dir/$node.stderr") . slurp("$dir/$node.log"));
}

# ---- two nginx, the second on another loopback address
my $http = <<'HTTP';
server {
    listen @ADDR@:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
    location = /status { offload_status; }
    location = /dash { offload_dashboard; }
}
HTTP
my %web = (a => { host => '127.0.0.1' }, b => { host => '127.0.0.2' });
start_nginx(http => $http =~ s/\@ADDR\@/127.0.0.1/r);
$web{a}{port} = nginx_port();
{
    my $bdir = "$dir/b";
    mkdir $bdir or die "mkdir $bdir: $!";
    chmod 0755, $bdir;
    $web{b}{port} = free_port();
    my $conf = write_nginx_conf(dir => $bdir, port => $web{b}{port},
        file => "$bdir/nginx.conf", http => $http =~ s/\@ADDR\@/127.0.0.2/r);
    spawn('nginx-b', "$bdir/nginx.stderr", nginx_env(), '/usr/sbin/nginx',
        '-p', "$bdir/", '-c', $conf);
}

# a request to nginx a or b: { status, content, json }
sub on {
    my ($w, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => scaled(10), keep_alive => 0)->request(
        $method, "http://$web{$w}{host}:$web{$w}{port}$path",
        defined $body ? { content => $body,
            headers => { 'content-type' => 'application/json' } } : {});
    $r->{json} = json_decode($r->{content} // '');
    return $r;
}
for my $w (sort keys %web) {
    ok(wait_until(sub {
        die "nginx $w exited\n" unless alive($w eq 'a' ? 'nginx' : 'nginx-b');
        !grep { on($w, 'POST', '/jobs/echo', '{}')->{status} != 200 } 1 .. 4;
    }, scaled(15), "nginx $w answers"), "nginx $w on $web{$w}{host} is up");
}

# ---- every view lists the nodes
my $ctl = build_path('offloadctl') . ' -r 127.0.0.1:' . redis_port();
sub status_nodes {
    my ($w, $path) = @_;
    my $j = on($w, 'GET', $path)->{json} || {};
    return [ sort map { $_->{node} } @{ $j->{nodes} || [] } ];
}
sub ctl_nodes {
    my ($cmd) = @_;
    my $out = `$ctl $cmd 2>&1`;
    return undef if $?;
    my %seen = map { $_ => 1 } $out =~ /^(node-[abc])\s/mg;
    return [ sort keys %seen ];
}
my %views = (
    'offload_status of nginx a' => sub { status_nodes('a', '/status') },
    'offload_status of nginx b' => sub { status_nodes('b', '/status') },
    'the dashboard data (?status) of nginx a'
        => sub { status_nodes('a', '/dash?status') },
    'the dashboard data (?status) of nginx b'
        => sub { status_nodes('b', '/dash?status') },
    'offloadctl status' => sub { ctl_nodes('status') },
    'offloadctl top -b' => sub { ctl_nodes('top -b') },
);
sub views_show {
    my ($names, $msg) = @_;
    my $want = join ' ', @$names;
    for my $view (sort keys %views) {
        my $got;
        ok(wait_until(sub { ($got = join ' ', @{ $views{$view}->() || [] })
            eq $want }, scaled(10), "$view: $want"), "$view $msg")
            or diag("$view shows: $got");
    }
}
views_show(\@nodes, 'shows node-a, node-b and node-c');

# offload_status merges the queues over the nodes
sub merged_ok {
    my ($n) = @_;
    my $got = '';
    ok(wait_until(sub {
        my $j = on('a', 'GET', '/status')->{json} || {};
        $got = join ' ', map { $_ // '-' } $j->{workers_total},
            map { @{ $j->{queues}{$_} || {} }{qw(nodes workers)} }
            sort keys %$want;
        $got eq join ' ', 3 * $n, map { ($n, $n * $want->{$_}) }
            sort keys %$want;
    }, scaled(10), "merged over $n nodes"), "offload_status: workers_total, "
        . "and each queue's nodes and workers, summed over $n nodes")
        or diag("workers_total, echo nodes/workers, sleep nodes/workers: "
            . $got);
}
merged_ok(3);

# ---- load from both nginx: echo (the answer is the body itself) and sleep
# jobs (50..146 ms, answered with the time slept), bounded
my %load = (
    echo  => { conns => 4, per => 60 },
    sleep => { conns => 6, per => 12 },
);
sub make_body {
    my ($w, $q) = @_;
    return sub {
        my ($c, $j) = @_;
        return $q eq 'echo'
            ? json_encode({ nginx => $w, c => $c, j => $j, pad => 'x' x $j })
            : json_encode({ ms => 50 + ($c * 31 + $j * 17) % 97 });
    };
}
my @children;
for my $w (sort keys %web) {
    for my $q (sort keys %load) {
        my $file = "$dir/load-$w-$q.json";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my @r = concurrent_posts($load{$q}{conns}, $load{$q}{per},
                make_body($w, $q), path => "/jobs/$q",
                host => $web{$w}{host}, port => $web{$w}{port},
                timeout => scaled(45));
            spew($file, json_encode([ map { { body => $_->{body},
                status => $_->{status}, content => $_->{content},
                error => $_->{error}, at => $_->{at} } } @r ]));
            POSIX::_exit(0);
        }
        push @children, { pid => $pid, file => $file, w => $w, q => $q };
    }
}

# jobs done per node and queue, from the nodes' documents
sub done_by {
    my ($node) = @_;
    my $doc = doc_of($node) or return undef;
    my %n;
    for my $q (keys %$want) {
        $n{$q} += $_->{jobs_ok} // 0
            for @{ $doc->{queues}{$q}{workers} || [] };
    }
    return \%n;
}
# entries each node's consumers hold, per queue (XPENDING by consumer)
sub held {
    my %h;
    for my $q (keys %$want) {
        my $p = redis_cmd('XPENDING', "offload:{$q}:jobs", 'workers');
        for (@{ ref $p eq 'ARRAY' && ref $p->[3] eq 'ARRAY' ? $p->[3] : [] }) {
            my ($node) = $_->[0] =~ /^([^:]+):/;
            $h{$node}{$q} += $_->[1];
        }
    }
    return \%h;
}

# ---- node-b dies once every node has run jobs of both queues and node-b
# holds sleep jobs
my $before;
ok(wait_until(sub {
    for my $node (@nodes) {
        my $d = done_by($node) or return 0;
        return 0 if grep { !$d->{$_} } keys %$want;
    }
    return 0 unless (held()->{$victim}{sleep} // 0) >= 2;
    $before = done_by($victim);
}, scaled(20), 'every node busy'), 'under load every node has run echo and '
    . 'sleep jobs, and node-b holds sleep jobs');
my @victims = ($pid{$victim}, @{ node_up($victim, $pid{$victim}) || [] });
kill 'KILL', @victims;
my $t_kill = time;
# gone, or a zombie nobody has reaped yet
sub running { slurp("/proc/$_[0]/stat") =~ /^\S+ \(.*\) [^Z]/ }
ok(wait_until(sub { !grep { running($_) } @victims }, 5, 'node-b gone'),
    'node-b\'s supervisor and workers are gone');
stop_proc($victim, 1);
my $lost = held()->{$victim} || {};
my $lost_n = ($lost->{echo} // 0) + ($lost->{sleep} // 0);

# the entries node-b held that its supervisor had marked running: those
# fail an attempt when claimed, the others go back unchanged
my $running_n = 0;
for my $q (keys %$want) {
    my $marks = redis_cmd('HGETALL', "offload:{$q}:running");
    my %mark = @{ ref $marks eq 'ARRAY' ? $marks : [] };
    my $p = redis_cmd('XPENDING', "offload:{$q}:jobs", 'workers', '-', '+',
        1000);
    for my $e (@{ ref $p eq 'ARRAY' ? $p : [] }) {
        $running_n++ if $e->[1] =~ /^\Q$victim\E:/
            && ($mark{ $e->[1] } // '') eq $e->[0];
    }
}
diag(sprintf 'node-b had run %d echo and %d sleep jobs; it held %d echo '
    . 'and %d sleep entries when killed', $before->{echo}, $before->{sleep},
    $lost->{echo} // 0, $lost->{sleep} // 0);
ok($lost_n > 0, 'the dead node held jobs');

ok(wait_until(sub { !%{ held()->{$victim} || {} } }, scaled(15),
    'node-b\'s entries reclaimed'), 'nothing is left held by node-b');
diag(sprintf 'node-b\'s entries reclaimed %.2f s after the kill '
    . '(claim_idle 2s)', time - $t_kill);
# (each event follows its entry's claim: the claimer adds it once it has
# the claim's reply, after the entry left node-b, as it sends the entry's
# failure or hand back; so once the claimers hold nothing, all are in)
sub claimers_hold {
    my $n = 0;
    for my $q (keys %$want) {
        my $p = redis_cmd('XPENDING', "offload:{$q}:jobs", 'workers');
        $n += $_->[0] =~ /:claim$/ ? $_->[1] : 0
            for @{ ref $p eq 'ARRAY' && ref $p->[3] eq 'ARRAY' ? $p->[3] : [] };
    }
    return $n;
}
ok(wait_until(sub { claimers_hold() == 0 }, scaled(10), 'claims settled'),
    'the claimers failed or handed back all they claimed');
my @reclaims;
wait_until(sub { @reclaims = @{ events('reclaim') };
    @reclaims >= $running_n }, scaled(5), 'reclaim events');
diag("node-b was running $running_n of them (its marks)");
is(scalar @reclaims, $running_n, 'one reclaim event per entry node-b was '
    . 'running (the others it had only read went back unchanged)');
is(scalar(grep { $_->{node} ne $victim && $_->{report}{reason} eq 'node_lost' }
    @reclaims), scalar @reclaims, 'all by the surviving nodes, node_lost');
my %by;
$by{ $_->{node} }++ for @reclaims;
diag('reclaimed by: ' . join ', ', map { "$_ $by{$_}" } sort keys %by);

# ---- every request answered, with its own answer
my ($sent, $ok, $after, @bad) = (0, 0, 0);
for my $ch (@children) {
    ok(wait_until(sub { waitpid($ch->{pid}, POSIX::WNOHANG()) == $ch->{pid} },
        scaled(60), "load $ch->{w} $ch->{q}"),
        "the $ch->{q} load on nginx $ch->{w} ends");
    my $r = json_decode(slurp($ch->{file})) || [];
    my $n = $load{$ch->{q}}{conns} * $load{$ch->{q}}{per};
    is(scalar @$r, $n, "$n $ch->{q} requests to nginx $ch->{w} made");
    for (@$r) {
        $sent++;
        $after++ if ($_->{at} // 0) > $t_kill;
        my $good = $_->{status} == 200 && ($ch->{q} eq 'echo'
            ? ($_->{content} // '') eq $_->{body}
            : do { my ($in, $out) = (json_decode($_->{body}),
                       json_decode($_->{content} // ''));
                   $out && ($out->{ms} // -1) >= $in->{ms}
                       && $out->{ms} < $in->{ms} + 5000 });
        $good ? $ok++ : push @bad, $_;
    }
}
is($ok, $sent, "all $sent requests answered 200 with their own answer");
ok($after > 0, "the load went on after the kill ($after answers after it)");
diag(json_encode($_)) for @bad[0 .. ($#bad < 5 ? $#bad : 5)];
is(pending_jobs($_), 0, "nothing of $_ left pending") for sort keys %$want;
is(redis_cmd('XLEN', "offload:{$_}:dead"), 0, "no $_ dead letters")
    for sort keys %$want;

# ---- the jobs spread: every node ran jobs of both queues
for my $node (@nodes) {
    my $d = $node eq $victim ? $before : done_by($node);
    ok($d && $d->{echo} > 0 && $d->{sleep} > 0,
        "$node ran echo and sleep jobs");
    diag(sprintf '%s: %d echo, %d sleep jobs', $node, $d->{echo},
        $d->{sleep}) if $d;
}

# ---- node-b drops out of every view once its entry's TTL (5 s) runs out
views_show(\@survivors, 'shows node-a and node-c, node-b gone');
merged_ok(2);
diag(sprintf 'node-b gone from every view %.1f s after the kill',
    time - $t_kill);

# ---- the survivors stop cleanly; no crash in any log
for my $node (@survivors) {
    is(stop_proc($node, scaled(20)), 0, "$node exits 0 on SIGTERM");
}
ok(!grep({ $_->{type} eq 'crash' } @{ stream_entries('offload:{ctl}:events') }),
    'no worker crashed');
is(stop_proc('nginx-b', scaled(15)) & 127, 0, 'nginx b stops');
my @logs = map { ("$dir/$_.log", "$dir/$_.stderr") } @nodes;
my @bad_lines = grep { /AddressSanitizer|runtime error|LeakSanitizer/ }
    map { split /\n/, slurp($_) } @logs;
my @nginx_b = grep { /\[alert\]|exited on signal|AddressSanitizer/ }
    split /\n/, slurp("$dir/b/error.log") . slurp("$dir/b/nginx.stderr");
ok(!@bad_lines, 'sidecar logs: no sanitizer report') or diag(@bad_lines);
ok(!@nginx_b, 'nginx b: no crash or alert') or diag(@nginx_b);

finish();
