package BlackholeProxy;
# BlackholeProxy -- a TCP proxy to a loopback port that can go silent the way
# a dead host, a failover behind a virtual IP or a NAT timeout does: on
# SIGUSR1 it stops forwarding on every connection it has (no RST, no FIN,
# the sockets stay open), while new connections still go through.  Runs in
# a child process; core Perl only.

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

# start($target_port) -> { pid, port }
sub start {
    my ($class, $target) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Listen => 128, ReuseAddr => 1, Proto => 'tcp')
        or die "proxy listen: $!";
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        run($listen, $target, $parent);
        POSIX::_exit(0);
    }
    my $self = bless { pid => $pid, port => $listen->sockport }, $class;
    close $listen;
    return $self;
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }

# Every connection open now stops forwarding, for good.
sub blackhole { kill 'USR1', $_[0]{pid} }

sub stop {
    my ($self) = @_;
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
}

# Forwards until its test process is gone (checked every half second, so
# no proxy outlives a test that died without its END block).
sub run {
    my ($listen, $target, $parent) = @_;
    my (%peer, %frozen);
    my $freeze = 0;
    local $SIG{USR1} = sub { $freeze = 1 };
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    my $sel = IO::Select->new($listen);
    while (getppid() == $parent) {
        if ($freeze) {
            # keep the sockets, stop watching them
            for my $s (grep { $_ != $listen } $sel->handles) {
                $frozen{$s} = $s;
                $sel->remove($s);
            }
            $freeze = 0;
        }
        my @ready = $sel->can_read(0.5);
        for my $s (@ready) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                    PeerPort => $target, Proto => 'tcp');
                if (!$r) { close $c; next }
                @peer{ $c, $r } = ($r, $c);
                $sel->add($c, $r);
                next;
            }
            next unless $peer{$s};          # closed with its peer
            my $n = sysread($s, my $buf, 65536);
            my $p = $peer{$s};
            if (!$n) {
                $sel->remove($s, $p);
                delete @peer{ $s, $p };
                close $s;
                close $p;
                next;
            }
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite($p, $buf, $n - $off, $off);
                last unless defined $w;
                $off += $w;
            }
        }
    }
}

1;
