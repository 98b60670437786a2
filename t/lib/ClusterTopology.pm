package ClusterTopology;

# ClusterTopology -- a real Redis Cluster for tests, on loopback ports
# picked at run time: redis-server processes with --cluster-enabled, the
# slots split evenly over the masters (CLUSTER ADDSLOTSRANGE), joined with
# CLUSTER MEET, replicas attached with CLUSTER REPLICATE; all started
# through OffloadTest's spawn, so OffloadTest's teardown stops them.
#
#   my $cl = start_cluster_topology(masters => 3, replicas => 0);
#   $cl->seeds                  # "127.0.0.1:p1,127.0.0.1:p2,..."
#   $cl->url                    # "cluster://" . seeds
#   $cl->master_ports           # the masters, in slot order
#   $cl->slot_of($key)          # CLUSTER KEYSLOT
#   $cl->owner_port($key)       # the master serving $key's slot
#   $cl->queue_on($port, @names)  # the first queue name (of @names, or
#                               # q0, q1, ...) whose keys live on $port
#   $cl->move_slot($slot, $to_port[, hold => s])  # migrate a slot and
#                               # its keys (hold: MIGRATING s seconds first)
#   $cl->begin_move_slot($slot, $to_port)  # ... its keys only: the slot
#                               # MIGRATING (ASK redirections) until
#   $cl->end_move_slot($slot, $to_port)    # gives it to $to_port
#   $cl->cmd($port, ...)        # one command to one node
#   $cl->node_id($port)
#   $cl->replica_of($port)      # a replica of the master on $port
#   $cl->kill_node($port, 'KILL')  # or 'STOP'; a killed node is left out
#                               # of wait_ok
#   $cl->wait_owner_change($slot, $old_port, $timeout)  # a replica took
#                               # the slot over: its port
#   $cl->control_port           # the master of the control shard
#   $cl->other_masters          # the masters but that one, in slot order
#   $cl->start_offload(echo => [queues], server => 'location ...')  # the
#                               # sidecar and nginx on the cluster, ready
#
# No Debian package beyond redis-server, and no redis-cli --cluster: it
# waits with fixed sleeps; the CLUSTER commands let us wait on conditions.

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use Time::HiRes qw(time);
use IO::Socket::INET;
use OffloadTest;

our @EXPORT = qw(start_cluster_topology);

use constant SLOTS => 16384;

# start_cluster_topology(masters => 3, replicas => 0 (per master),
#     node_timeout => ms (1000), args => [more redis-server arguments])
# A master killed is failed over (or the cluster says fail) about 1.5
# node timeouts later: 1000 ms keeps the tests that wait for it short,
# and held up under valgrind (t/90-valgrind-cluster) before it was the
# default.
# Returns the topology once every node says cluster_state:ok and agrees
# on who serves every slot; fails the file (give_up) if it does not.
sub start_cluster_topology {
    my (%o) = @_;
    my $self = bless {
        node_timeout => $o{node_timeout} // 1000,
        args => $o{args} // [],
        masters => [],
        replicas => [],
        dir => tmpdir(),
    }, __PACKAGE__;
    my $n = $o{masters} // 3;
    my @masters = map { $self->start_node() } 1 .. $n;
    my @replicas = map { $self->start_node() } 1 .. $n * ($o{replicas} // 0);
    $self->{masters} = \@masters;
    for my $i (0 .. $#masters) {
        my $from = int(SLOTS * $i / $n);
        my $to = int(SLOTS * ($i + 1) / $n) - 1;
        $self->ok_cmd($masters[$i], 'CLUSTER', 'ADDSLOTSRANGE', $from, $to);
    }
    for my $port (@masters[1 .. $#masters], @replicas) {
        $self->ok_cmd($port, 'CLUSTER', 'MEET', '127.0.0.1', $masters[0]);
    }
    # a replica can only follow a master it knows
    for my $i (0 .. $#replicas) {
        my $master = $masters[$i % $n];
        my $id = $self->node_id($master);
        wait_until(sub { $self->knows($replicas[$i], $id) }, scaled(10),
            "node $replicas[$i] learns of $master")
            or $self->fail_setup('a replica never heard of its master');
        $self->ok_cmd($replicas[$i], 'CLUSTER', 'REPLICATE', $id);
        push @{ $self->{replicas} }, $replicas[$i];
    }
    $self->wait_ok(scaled(30))
        or $self->fail_setup('the cluster did not come up');
    return $self;
}

sub fail_setup {
    my ($self, $why) = @_;
    OffloadTest::give_up("$why: " . join '', map {
        slurp("$self->{dir}/cluster-$_.log") } $self->ports);
}

# A free port whose cluster bus port (port + 10000) is free too: another
# test's server may hold it.
sub free_node_port {
    for (1 .. 100) {
        my $port = free_port();
        my $bus = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $port + 10000, Proto => 'tcp', Listen => 1,
            ReuseAddr => 1) or next;
        close $bus;
        return $port;
    }
    die "no free port with a free cluster bus port\n";
}

sub start_node {
    my ($self) = @_;
    my $port = free_node_port();
    my $dir = "$self->{dir}/cluster-$port";
    mkdir $dir or die "mkdir $dir: $!";
    spawn("cluster-$port", "$self->{dir}/cluster-$port.log", {},
        'redis-server', '--port', $port, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--daemonize', 'no', '--cluster-enabled', 'yes',
        '--cluster-config-file', "$dir/nodes.conf",
        '--cluster-node-timeout', $self->{node_timeout},
        '--repl-diskless-sync-delay', 0, @{ $self->{args} });
    wait_until(sub { ($self->cmd($port, 'PING') // '') eq 'PONG' }, 10,
        "cluster node on $port answers PING")
        or $self->fail_setup("node $port did not start");
    push @{ $self->{all} }, $port;
    return $port;
}

sub ports { grep { !$_[0]{dead}{$_} } @{ $_[0]{all} } }
sub master_ports { grep { !$_[0]{dead}{$_} } @{ $_[0]{masters} } }
sub replica_ports { @{ $_[0]{replicas} } }
sub seeds { join ',', map { "127.0.0.1:$_" } $_[0]->master_ports }
sub url { 'cluster://' . $_[0]->seeds }

sub cmd {
    my ($self, $port, @args) = @_;
    return redis_cmd_at($port, @args);
}

sub ok_cmd {
    my ($self, $port, @args) = @_;
    my $r = $self->cmd($port, @args);
    die "@args on $port: " . (ref $r ? $r->{error} : $r // 'no answer')
        . "\n" unless ($r // '') eq 'OK';
    return $r;
}

sub node_id {
    my ($self, $port) = @_;
    return $self->cmd($port, 'CLUSTER', 'MYID');
}

# The node on $port lists the node $id in CLUSTER NODES.
sub knows {
    my ($self, $port, $id) = @_;
    my $nodes = $self->cmd($port, 'CLUSTER', 'NODES') // '';
    return !ref $nodes && $nodes =~ /^\Q$id\E /m;
}

# Every node says cluster_state:ok and each answers CLUSTER SLOTS with
# the same masters for the same ranges.
sub wait_ok {
    my ($self, $timeout) = @_;
    return wait_until(sub {
        my %maps;
        for my $port ($self->ports) {
            my $info = $self->cmd($port, 'CLUSTER', 'INFO') // '';
            return 0 unless !ref $info && $info =~ /cluster_state:ok/;
            $maps{ $self->slot_map_text($port) } = 1;
        }
        return keys %maps == 1;
    }, $timeout, 'every cluster node is ok and agrees on the slots');
}

# CLUSTER SLOTS of one node as text, "from-to:port ..." sorted.
sub slot_map_text {
    my ($self, $port) = @_;
    my $slots = $self->cmd($port, 'CLUSTER', 'SLOTS');
    return '' unless ref $slots eq 'ARRAY';
    return join ' ', sort map { "$_->[0]-$_->[1]:$_->[2][1]" } @$slots;
}

# The master of the control shard (offload:{ctl}:*), where the sidecar
# registers; the other masters, in slot order.
sub control_port { $_[0]->owner_port('ctl') }
sub other_masters {
    my ($self) = @_;
    my $ctl = $self->control_port;
    return grep { $_ != $ctl } $self->master_ports;
}

# start_offload(echo => [queues each served by `handler echo`],
#     conf => more sidecar conf (other queues), server => the locations,
#     redis => nginx's offload_redis (default the cluster's url),
#     level => nginx's error_log level, workers => nginx workers (2),
#     ready => [path, body] (default a POST of {} to /jobs/<first queue>))
# The set-up of most cluster tests: the control shard's master made the
# test's Redis (redis_use), a sidecar on the cluster registered with every
# worker, then nginx with one server on the cluster.  Returns whether
# nginx's workers subscribed and the ready path answered 200.
sub start_offload {
    my ($self, %o) = @_;
    redis_use($self->control_port);
    start_sidecar(redis => $self->url, conf => join('',
        map({ "queue $_ { handler echo; }\n" } @{ $o{echo} // [] }),
        $o{conf} // ''));
    start_nginx(level => $o{level}, workers => $o{workers}, http => <<"HTTP");
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis ${\ ($o{redis} // $self->url) };
$o{server}
}
HTTP
    my ($path, $body) = @{ $o{ready} // [ "/jobs/$o{echo}[0]", '{}' ] };
    return wait_nginx_ready($path, $body, $o{workers});
}

sub slot_of {
    my ($self, $key) = @_;
    return $self->cmd(($self->ports)[0], 'CLUSTER', 'KEYSLOT', $key);
}

# The master serving the slot, as the first live node asked says.
sub slot_owner {
    my ($self, $slot) = @_;
    my $slots = $self->cmd(($self->ports)[0], 'CLUSTER', 'SLOTS');
    for my $range (@$slots) {
        return $range->[2][1] if $slot >= $range->[0] && $slot <= $range->[1];
    }
    return undef;
}

sub owner_port {
    my ($self, $key) = @_;
    return $self->slot_owner($self->slot_of($key));
}

sub queue_on {
    my ($self, $port, @names) = @_;
    @names = map { "q$_" } 0 .. 99 unless @names;
    for my $name (@names) {
        return $name if ($self->owner_port($name) // 0) == $port;
    }
    return undef;
}

# Moves $slot to the master on $to_port the way redis-cli --cluster
# reshard does: IMPORTING on the target, MIGRATING on the source, MIGRATE
# of its keys in batches, then SETSLOT NODE on every master.  Keys written
# meanwhile get ASK redirections.  Returns the source port.
sub move_slot {
    my ($self, $slot, $to_port, %o) = @_;
    my $from_port = $self->begin_move_slot($slot, $to_port, %o);
    $self->end_move_slot($slot, $to_port) if $from_port != $to_port;
    return $from_port;
}

# The first half of move_slot: the keys moved, the slot still the
# source's, MIGRATING there (a command on a key gone gets ASK) and
# IMPORTING on $to_port.  Returns the source port.
sub begin_move_slot {
    my ($self, $slot, $to_port, %o) = @_;
    my $from_port = $self->slot_owner($slot);
    return $from_port if $from_port == $to_port;
    my $from_id = $self->node_id($from_port);
    my $to_id = $self->node_id($to_port);
    $self->ok_cmd($to_port, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING',
        $from_id);
    $self->ok_cmd($from_port, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING',
        $to_id);
    # hold => s: the slot stays MIGRATING that long before its keys move
    # (a command on keys of which some are still on the source and some
    # not gets TRYAGAIN meanwhile)
    select(undef, undef, undef, $o{hold}) if $o{hold};
    for (1 .. 10_000) {
        my $keys = $self->cmd($from_port, 'CLUSTER', 'GETKEYSINSLOT', $slot,
            100);
        die "GETKEYSINSLOT: $keys->{error}\n" if ref $keys eq 'HASH';
        last unless @$keys;
        my $r = $self->cmd($from_port, 'MIGRATE', '127.0.0.1', $to_port, '',
            0, 5000, 'REPLACE', 'KEYS', @$keys);
        die "MIGRATE: " . (ref $r ? $r->{error} : $r // 'no answer') . "\n"
            unless ($r // '') eq 'OK' || ($r // '') eq 'NOKEY';
    }
    return $from_port;
}

# The second half: the slot given to $to_port on every master.
sub end_move_slot {
    my ($self, $slot, $to_port) = @_;
    my $from_port = $self->slot_owner($slot);
    my $to_id = $self->node_id($to_port);
    # the target first, so that the source's MOVED points at a node that
    # already serves the slot
    for my $port ($to_port, $from_port,
                  grep { $_ != $to_port && $_ != $from_port }
                  $self->master_ports)
    {
        $self->ok_cmd($port, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id);
    }
    $self->wait_ok(scaled(30))
        or die "the cluster did not agree on the move of slot $slot\n";
}

sub replica_of {
    my ($self, $port) = @_;
    my $id = $self->node_id($port);
    for my $replica (grep { !$self->{dead}{$_} } @{ $self->{replicas} }) {
        my $nodes = $self->cmd($replica, 'CLUSTER', 'NODES') // '';
        return $replica if $nodes =~ /^\S+ \S+ myself,slave \Q$id\E /m;
    }
    return undef;
}

sub kill_node {
    my ($self, $port, $sig) = @_;
    kill $sig // 'KILL', proc_pid("cluster-$port");
    $self->{dead}{$port} = 1;
    return $port;
}

# Waits until the live nodes agree that a master other than $old_port
# serves $slot; returns its port, or undef after $timeout seconds.
sub wait_owner_change {
    my ($self, $slot, $old_port, $timeout) = @_;
    my $new;
    $self->{masters} = [ grep { $_ != $old_port } @{ $self->{masters} } ];
    wait_until(sub {
        my %owners;
        for my $port ($self->ports) {
            my $slots = $self->cmd($port, 'CLUSTER', 'SLOTS');
            my ($range) = grep { $slot >= $_->[0] && $slot <= $_->[1] }
                ref $slots eq 'ARRAY' ? @$slots : ();
            $owners{ $range ? $range->[2][1] : 0 } = 1;
        }
        my @owners = keys %owners;
        $new = $owners[0] if @owners == 1 && $owners[0] != $old_port
            && $owners[0] != 0;
        return $new;
    }, $timeout, "a new master for slot $slot") or return undef;
    push @{ $self->{masters} }, $new
        unless grep { $_ == $new } @{ $self->{masters} };
    return $new;
}

1;
