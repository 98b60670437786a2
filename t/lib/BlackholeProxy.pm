package BlackholeProxy;
# BlackholeProxy -- a TCP proxy to a loopback port that can go silent the way
# a dead host, a failover behind a virtual IP or a NAT timeout does: on
# SIGUSR1 it stops forwarding on every connection it has (no RST, no FIN,
# the sockets stay open), while new connections still go through.  It can
# also hold what clients send, the way a server that stops reading does:
# started with hold_on, once a client's bytes match it (they are passed
# on) it reads no more from any client until release() (SIGUSR2), while
# the server's answers still come back; what clients send meanwhile fills
# their sockets.  Only once: after release() it forwards as usual.  And it
# can play a server that misbehaves: inject() writes bytes to every client
# as if the server had sent them.  Started with mute_on, it plays a server
# whose answers are lost: on each connection whose client's bytes match
# (they are passed on, and run), the server's answers from then on are
# read and dropped, the sockets kept open; inject() then writes only to
# those connections, as their lost answers' stand-in.  Started with hold_from, it
# plays a slow path for one connection: the first whose client's bytes
# match has them (from the read that matched on) held, not passed on,
# until release(), while every other connection goes on.  Started with
# lag => $s, it plays a slow way back: the server's answers reach their
# clients $s seconds after they came, in their order, while what clients
# send goes on at once (a server that closes closes its client at once:
# its late answers are lost).  refuse_new() closes its listening socket:
# a new connection is refused, as by a host that went down, while those
# open go on.  Runs in a child process; core Perl only.

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

# start($target_port, hold_on => qr/.../, mute_on => qr/.../,
#       hold_from => qr/.../, lag => $s) -> { pid, port }
sub start {
    my ($class, $target, %o) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Listen => 128, ReuseAddr => 1, Proto => 'tcp')
        or die "proxy listen: $!";
    pipe(my $inject_r, my $inject_w) or die "pipe: $!";
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $inject_w;
        run($listen, $target, $parent, $inject_r, %o);
        POSIX::_exit(0);
    }
    close $inject_r;
    my $self = bless { pid => $pid, port => $listen->sockport,
        inject => $inject_w }, $class;
    close $listen;
    return $self;
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }

# Every connection open now stops forwarding, for good.
sub blackhole { kill 'USR1', $_[0]{pid} }

# New connections are refused from now on; those open go on.
sub refuse_new { kill 'HUP', $_[0]{pid} }

# What the clients sent since hold_on (or hold_from) matched goes on, and
# so does the rest.
sub release { kill 'USR2', $_[0]{pid} }

# Every client connection open now gets $bytes (only the muted ones, with
# mute_on), between two of the server's reads.
sub inject {
    my ($self, $bytes) = @_;
    syswrite($self->{inject}, $bytes) == length $bytes
        or die "inject: $!";
}

# inject($bytes) again every half second until the text $log->() returns
# matches every pattern of @want (a connection dropped for one injection
# may not be back for the next yet), for up to $secs seconds.  True when
# they all matched; OffloadTest's wait_until says what timed out.
sub inject_until {
    my ($self, $bytes, $log, $secs, @want) = @_;
    my $next = 0;
    return OffloadTest::wait_until(sub {
        if (Time::HiRes::time() >= $next) {
            $self->inject($bytes);
            $next = Time::HiRes::time() + 0.5;
        }
        my $text = $log->();
        !grep { $text !~ $_ } @want;
    }, $secs, "@want");
}

sub stop {
    my ($self) = @_;
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
}

# Forwards until its test process is gone (checked every half second, so
# no proxy outlives a test that died without its END block).
sub run {
    my ($listen, $target, $parent, $inject, %o) = @_;
    my ($hold_on, $mute_on, $hold_from, $lag) =
        @o{qw(hold_on mute_on hold_from lag)};
    my (%peer, %frozen, %client, %tail, %held, %mute_tail, %muted);
    my (%from_tail, @stashed, @late);
    my ($freeze, $release, $holding, $deaf) = (0, 0, 0, 0);
    local $SIG{HUP} = sub { $deaf = 1 };
    local $SIG{USR1} = sub { $freeze = 1 };
    local $SIG{USR2} = sub { $release = 1 };
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    my $sel = IO::Select->new($listen, $inject);
    while (getppid() == $parent) {
        if ($deaf && $listen) {
            $sel->remove($listen);
            close $listen;
            $listen = undef;
        }
        if ($freeze) {
            # keep the sockets, stop watching them
            for my $s ((grep { !$listen || $_ != $listen } $sel->handles),
                       values %held) {
                $frozen{$s} = $s;
                $sel->remove($s);
            }
            %held = ();
            ($freeze, $holding, $hold_on) = (0, 0, undef);
        }
        if ($release) {
            $sel->add(values %held);
            %held = ();
            for (splice @stashed) {
                my ($s, $bytes) = @$_;
                next unless $peer{$s};
                syswrite_all($peer{$s}, $bytes);
                $sel->add($s);
            }
            ($release, $holding, $hold_on, $hold_from) = (0, 0, undef, undef);
        }
        while (@late && $late[0][0] <= Time::HiRes::time()) {
            my (undef, $c, $bytes) = @{ shift @late };
            syswrite_all($c, $bytes) if $peer{$c};
        }
        my $wait = @late ? $late[0][0] - Time::HiRes::time() : 0.5;
        my @ready = $sel->can_read($wait < 0 ? 0 : $wait > 0.5 ? 0.5 : $wait);
        for my $s (@ready) {
            if ($listen && $s == $listen) {
                my $c = $listen->accept or next;
                my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                    PeerPort => $target, Proto => 'tcp');
                if (!$r) { close $c; next }
                @peer{ $c, $r } = ($r, $c);
                $client{$c} = 1;
                $sel->add($r);
                if ($holding) { $held{$c} = $c } else { $sel->add($c) }
                next;
            }
            if ($s == $inject) {
                sysread($inject, my $bytes, 65536) or return;
                for my $c (map { $peer{ $peer{$_} } } keys %client) {
                    syswrite($c, $bytes)
                        unless $mute_on && !$muted{ $peer{$c} };
                }
                next;
            }
            next unless $peer{$s};          # closed with its peer
            next if $held{$s};              # held since select said ready
            my $n = sysread($s, my $buf, 65536);
            my $p = $peer{$s};
            if (!$n) {
                $sel->remove($s, $p);
                delete @peer{ $s, $p };
                delete @client{ $s, $p };
                delete @tail{ $s, $p };
                delete @held{ $s, $p };
                delete @mute_tail{ $s, $p };
                delete @muted{ $s, $p };
                close $s;
                close $p;
                next;
            }
            if ($hold_from && $client{$s}
                && seen($from_tail{$s}, $buf, $hold_from))
            {
                push @stashed, [ $s, $buf ];
                $sel->remove($s);
                $hold_from = undef;
                next;
            }
            if ($lag && !$client{$s}) {
                push @late, [ Time::HiRes::time() + $lag, $p, $buf ];
                next;
            }
            syswrite_all($p, $buf) unless $muted{$s};
            $muted{$p} = 1
                if $mute_on && $client{$s} && !$muted{$p}
                    && seen($mute_tail{$s}, $buf, $mute_on);
            next unless $hold_on && $client{$s};
            next unless seen($tail{$s}, $buf, $hold_on);
            for my $h (grep { $client{$_} } $sel->handles) {
                $held{$h} = $h;
                $sel->remove($h);
            }
            ($holding, $hold_on) = (1, undef);
            %tail = ();
        }
    }
}

sub syswrite_all {
    my ($s, $buf) = @_;
    my $off = 0;
    while ($off < length $buf) {
        my $w = syswrite($s, $buf, length($buf) - $off, $off);
        last unless defined $w;
        $off += $w;
    }
}

# Whether $buf, after what came before on its connection (the end of it
# kept in $tail), matches $re: a match across two reads counts.
sub seen {
    my ($tail, $buf, $re) = @_;
    my $text = ($tail // '') . $buf;
    return 1 if $text =~ $re;
    $_[0] = substr($text, -4096);
    return 0;
}

1;
