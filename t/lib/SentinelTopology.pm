package SentinelTopology;

# SentinelTopology -- a real Redis Sentinel set-up for tests, on loopback
# ports picked at run time: one master redis-server, its replicas
# (--replicaof) and three sentinels (redis-server <conf> --sentinel), all
# started through OffloadTest's spawn, so OffloadTest's teardown stops them.
#
#   my $topo = start_sentinel_topology(name => 'offload');
#   $topo->url                  # "127.0.0.1:p1,127.0.0.1:p2,.../offload"
#   $topo->master_port          # the master the sentinels agree on
#   $topo->failover             # SENTINEL FAILOVER, waits for the new master
#   $topo->request_failover($port)  # SENTINEL FAILOVER alone, asked again
#                               # while the sentinel has no good replica yet
#   $topo->kill_master('KILL')  # or 'STOP'; returns the old master's port
#   $topo->wait_master_change($old, $timeout)  # the new master's port
#   $topo->wait_ready($timeout) # sentinels see the master and a replica
#   $topo->wait_replicas_up($n, $timeout)  # every sentinel sees $n replicas
#                               # up, their link to the master working
#   redis_cmd_at($port, ...)    # (OffloadTest) ask one server directly
#   $topo->sentinel_cmd($port, ...)  # ask one sentinel (AUTH first when
#                               # the sentinels have a password)
#   $topo->signal_sentinel($port, 'STOP')
#   $topo->in_tilt($port)       # the sentinel is in TILT mode
#   $topo->clients_of($port, $pid)  # process $pid's connections to the
#                               # server or sentinel on $port (needs ss)
#
# No Debian package beyond redis-server: a sentinel is redis-server run
# with --sentinel.

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest;

our @EXPORT = qw(start_sentinel_topology);

# start_sentinel_topology(name => master name (default 'offload'),
#     replicas => 1, sentinels => 3, quorum => 2,
#     down_after => ms (1000), failover_timeout => ms (3000),
#     args => [more redis-server arguments for master and replicas],
#     password => the sentinels' requirepass (and their sentinel-pass to
#     one another); none by default)
# Returns the topology once every sentinel sees the master, the replicas
# and the other sentinels; fails the file (give_up) if it does not.
sub start_sentinel_topology {
    my (%o) = @_;
    my $self = bless {
        name => $o{name} // 'offload',
        down_after => $o{down_after} // 1000,
        failover_timeout => $o{failover_timeout} // 3000,
        quorum => $o{quorum} // 2,
        args => $o{args} // [],
        password => $o{password},
        redis => [],
        sentinels => [],
        dir => tmpdir(),
    }, __PACKAGE__;
    my $master = $self->start_server();
    $self->start_server($master) for 1 .. ($o{replicas} // 1);
    $self->start_sentinel($master) for 1 .. ($o{sentinels} // 3);
    $self->wait_ready(scaled(30))
        or OffloadTest::give_up('sentinel topology did not come up: '
            . join '', map { slurp("$self->{dir}/$_.log") }
            map { ("redis-$_", "sentinel-$_") } $self->ports);
    return $self;
}

sub ports {
    my ($self) = @_;
    return (@{ $self->{redis} }, @{ $self->{sentinels} });
}

# A redis-server on a new port, a replica of $master_port when given.
sub start_server {
    my ($self, $master_port) = @_;
    my $port = free_port();
    my $dir = "$self->{dir}/redis-$port";
    mkdir $dir or die "mkdir $dir: $!";
    spawn("redis-$port", "$self->{dir}/redis-$port.log", {}, 'redis-server',
        '--port', $port, '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--dir', $dir, '--daemonize', 'no',
        # replicas sync at once, not after the default 5 s diskless delay
        '--repl-diskless-sync-delay', 0,
        ($master_port ? ('--replicaof', '127.0.0.1', $master_port) : ()),
        @{ $self->{args} });
    wait_until(sub { (redis_cmd_at($port, 'PING') // '') eq 'PONG' }, 10,
        "redis-server on $port answers PING");
    push @{ $self->{redis} }, $port;
    return $port;
}

sub start_sentinel {
    my ($self, $master_port) = @_;
    my $port = free_port();
    my $conf = "$self->{dir}/sentinel-$port.conf";
    my $name = $self->{name};
    my $auth = defined $self->{password}
        ? "requirepass $self->{password}\n"
          . "sentinel sentinel-pass $self->{password}\n" : '';
    # the sentinel rewrites its config file: it must be its own, writable
    spew($conf, $auth . <<"CONF");
port $port
bind 127.0.0.1
daemonize no
dir $self->{dir}
sentinel monitor $name 127.0.0.1 $master_port $self->{quorum}
sentinel down-after-milliseconds $name $self->{down_after}
sentinel failover-timeout $name $self->{failover_timeout}
sentinel parallel-syncs $name 1
CONF
    spawn("sentinel-$port", "$self->{dir}/sentinel-$port.log", {},
        'redis-server', $conf, '--sentinel');
    wait_until(sub { ($self->sentinel_cmd($port, 'PING') // '') eq 'PONG' },
        10,
        "sentinel on $port answers PING");
    # A sentinel asks each server for INFO every 10 s (every second only
    # while its master is down or failing over) and demotes a failed-over
    # master that still says it is one 4 publish periods (8 s) after it
    # first said so: a demoted master took up to 20 s to be a replica
    # again.  SENTINEL DEBUG (Redis 7.0) sets those periods: INFO every
    # second, a hello every 500 ms (the demotion after 2 s).
    my $r = $self->sentinel_cmd($port, 'SENTINEL', 'DEBUG',
        'info-period', 1000, 'publish-period', 500);
    die "SENTINEL DEBUG on $port: "
        . (ref $r ? $r->{error} : $r // 'no answer') . "\n"
        unless ($r // '') eq 'OK';
    push @{ $self->{sentinels} }, $port;
    return $port;
}

# A command to the sentinel on $port, after AUTH when the sentinels have
# a password; its reply as redis_cmd_at gives it.
sub sentinel_cmd {
    my ($self, $port, @args) = @_;
    return redis_cmd_at($port, @args) unless defined $self->{password};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp', Timeout => 2)
        or die "sentinel connect: $!\n";
    my $req = '';
    for my $cmd ([ 'AUTH', $self->{password} ], \@args) {
        $req .= '*' . @$cmd . "\r\n";
        $req .= '$' . length($_) . "\r\n$_\r\n" for @$cmd;
    }
    OffloadTest::syswrite_all($s, $req);
    my $buf = '';
    my $auth = OffloadTest::resp_read($s, \$buf);
    die "sentinel AUTH: $auth->{error}\n" if ref $auth eq 'HASH';
    my $reply = OffloadTest::resp_read($s, \$buf);
    close $s;
    return $reply;
}

# Whether the sentinel on $port is in TILT mode: after its clock jumped
# (a SIGSTOP, a loaded machine) it watches but does not act for 30 s, and
# takes a SENTINEL FAILOVER it then lets time out.
sub in_tilt {
    my ($self, $port) = @_;
    my $info = eval { $self->sentinel_cmd($port, 'INFO', 'sentinel') } // '';
    return $info =~ /^sentinel_tilt:1/m;
}

# Sends $sig (STOP, CONT ...) to the sentinel on $port.
sub signal_sentinel {
    my ($self, $port, $sig) = @_;
    kill $sig, OffloadTest::proc_pid("sentinel-$port")
        or die "kill $sig sentinel-$port: $!\n";
}

# The connections process $pid has to the server or sentinel on $port:
# the entries of its CLIENT LIST (hashes of field => value) whose peer
# port is a local port of $pid's TCP connections (ss).
sub clients_of {
    my ($self, $port, $pid) = @_;
    my %mine = map { /^\S+\s+\S+\s+\S+:(\d+)\s.*pid=$pid,/ ? ($1 => 1) : () }
        split /\n/, `ss -Htnp state established 2>/dev/null`;
    my $list = eval {
        (grep { $_ == $port } @{ $self->{sentinels} })
            ? $self->sentinel_cmd($port, 'CLIENT', 'LIST')
            : redis_cmd_at($port, 'CLIENT', 'LIST');
    } // '';
    return grep { ($_->{addr} // '') =~ /:(\d+)$/ && $mine{$1} }
        map { +{ map { split /=/, $_, 2 } split / / } } split /\n/, $list;
}

sub name { $_[0]{name} }
sub sentinel_ports { @{ $_[0]{sentinels} } }
sub redis_ports { @{ $_[0]{redis} } }

# The sentinel list and master name as offload_redis sentinel:// takes
# them (without the scheme).
sub url {
    my ($self) = @_;
    return join(',', map { "127.0.0.1:$_" } @{ $self->{sentinels} })
        . "/$self->{name}";
}

# The master port one sentinel reports, or undef.
sub sentinel_master {
    my ($self, $sentinel) = @_;
    my $r = eval { $self->sentinel_cmd($sentinel, 'SENTINEL',
        'get-master-addr-by-name', $self->{name}) };
    return ref $r eq 'ARRAY' && @$r == 2 ? $r->[1] : undef;
}

# The master port every live sentinel reports, if they agree and that
# server says it is a master (ROLE); else undef.
sub master_port {
    my ($self) = @_;
    my %seen;
    for my $s (@{ $self->{sentinels} }) {
        my $p = $self->sentinel_master($s);
        return undef unless defined $p;
        $seen{$p} = 1;
    }
    my ($port, @more) = keys %seen;
    return undef if @more || !defined $port;
    my $role = eval { redis_cmd_at($port, 'ROLE') };
    return ref $role eq 'ARRAY' && $role->[0] eq 'master' ? $port : undef;
}

# True when every sentinel sees the master, knows the other sentinels and
# at least one replica with a working link to it.
sub wait_ready {
    my ($self, $timeout) = @_;
    my $want_sentinels = @{ $self->{sentinels} } - 1;
    return wait_until(sub {
        my $master = $self->master_port or return 0;
        for my $s (@{ $self->{sentinels} }) {
            my $others = $self->sentinel_cmd($s, 'SENTINEL', 'SENTINELS',
                $self->{name});
            return 0 unless ref $others eq 'ARRAY'
                && @$others >= $want_sentinels;
            return 0 unless $self->replicas_up($s);
        }
        1;
    }, $timeout // scaled(30), 'sentinels see master, replica and peers');
}

# True when every sentinel lists $n replicas of the master up with a
# working link to it: what nginx's wait_replicas=all counts.  The
# sentinels read a replica's link every INFO period (a second here), so a
# replica just synced is counted a little later.
sub wait_replicas_up {
    my ($self, $n, $timeout) = @_;
    return wait_until(sub {
        for my $s (@{ $self->{sentinels} }) {
            return 0 unless $self->replicas_up($s) >= $n;
        }
        1;
    }, $timeout // scaled(30), "every sentinel sees $n replicas up");
}

# How many replicas of the master sentinel $s lists up, with a working
# link to it.
sub replicas_up {
    my ($self, $s) = @_;
    my $replicas = $self->sentinel_cmd($s, 'SENTINEL', 'REPLICAS',
        $self->{name});
    return ref $replicas eq 'ARRAY' ? scalar grep { replica_ok($_) }
        @$replicas : 0;
}

sub replica_ok {
    my ($flat) = @_;
    my %r = @$flat;
    return $r{flags} eq 'slave' && ($r{'master-link-status'} // '') eq 'ok';
}

# Waits until the sentinels agree on a master other than $old; returns
# its port, or undef after $timeout s.
sub wait_master_change {
    my ($self, $old, $timeout) = @_;
    my $new;
    wait_until(sub {
        my $p = $self->master_port;
        $new = $p if defined $p && $p != $old;
        defined $new;
    }, $timeout // scaled(30), "sentinels move the master off $old");
    return $new;
}

# SENTINEL FAILOVER asked of the sentinel on $port (the first by default);
# returns 'OK', or the last error after $timeout s.  A sentinel answers
# NOGOODSLAVE while its view of the replicas is older than it trusts (on
# a loaded machine, its INFO rounds come late) and INPROG while a failover
# runs: both are asked again.
sub request_failover {
    my ($self, $port, $timeout) = @_;
    my $r;
    wait_until(sub {
        $r = $self->sentinel_cmd($port // $self->{sentinels}[0],
            'SENTINEL', 'FAILOVER', $self->{name});
        !(ref $r eq 'HASH' && ($r->{error} // '') =~ /^(NOGOODSLAVE|INPROG)/);
    }, $timeout // scaled(20), 'a sentinel that takes SENTINEL FAILOVER');
    return ref $r eq 'HASH' ? $r->{error} : $r;
}

# SENTINEL FAILOVER on the first sentinel; returns (old port, new port),
# the new one once the sentinels agree on it.
sub failover {
    my ($self, $timeout) = @_;
    my $old = $self->master_port // die "no agreed master\n";
    my $r = $self->request_failover(undef, $timeout);
    die "SENTINEL FAILOVER: $r\n" if $r ne 'OK';
    return ($old, $self->wait_master_change($old, $timeout));
}

# Sends $sig (KILL, STOP, CONT ...) to the redis-server on $port.
sub signal_server {
    my ($self, $port, $sig) = @_;
    kill $sig, OffloadTest::proc_pid("redis-$port")
        or die "kill $sig redis-$port: $!\n";
}

# Sends $sig ('KILL' by default, or 'STOP') to the current master and
# returns its port.  A killed master is gone for good.
sub kill_master {
    my ($self, $sig) = @_;
    my $old = $self->master_port // die "no agreed master\n";
    $self->signal_server($old, $sig // 'KILL');
    return $old;
}

# The replicas of the current master (ports), as the master reports them.
sub replica_ports {
    my ($self) = @_;
    my $master = $self->master_port or return ();
    my $info = redis_cmd_at($master, 'INFO', 'replication') // '';
    return $info =~ /^slave\d+:ip=[^,]+,port=(\d+),state=online/mg;
}

1;
