package FakeSentinel;
# FakeSentinel -- a stand-in for a Redis Sentinel that names whatever
# master it is told, even a replica (a stale sentinel): it answers what
# nginx's module and the sidecar send a sentinel -- AUTH, PING,
# SENTINEL get-master-addr-by-name (any name), SENTINEL REPLICAS (none),
# PSUBSCRIBE / SUBSCRIBE (confirmed, never a message), PING on a
# subscribed connection -- and appends a line to $log for each
# get-master-addr-by-name it answers.  Runs in a child process; core Perl
# only.
#
#   my $s = FakeSentinel->start(master_port => $p, log => $file,
#       port => $port,             # port: listen there (default: any)
#       subscribed_ping => $resp); # what a PING on a subscribed connection
#                                  # gets (default: its pong, as Redis)
#   $s->port; $s->asked;           # questions answered so far
#   $s->stop;

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

sub start {
    my ($class, %o) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $o{port} // 0, Listen => 128, ReuseAddr => 1,
        Proto => 'tcp') or die "fake sentinel listen: $!";
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        run($listen, $o{master_port}, $o{log}, $parent, $o{subscribed_ping});
        POSIX::_exit(0);
    }
    my $self = bless { pid => $pid, port => $listen->sockport,
        log => $o{log} }, $class;
    close $listen;
    return $self;
}

sub port { $_[0]{port} }

sub asked {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return 0;
    my @lines = <$fh>;
    return scalar @lines;
}

sub stop {
    my ($self) = @_;
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
}

sub bulk { defined $_[0] ? '$' . length($_[0]) . "\r\n$_[0]\r\n" : "\$-1\r\n" }

sub array { '*' . @_ . "\r\n" . join '', @_ }

# One command, an array of bulk strings, off the front of $$buf; undef
# until it is whole.
sub command {
    my ($buf) = @_;
    return undef unless $$buf =~ /^\*(\d+)\r\n/;
    my ($n, $at) = ($1, length("*$1\r\n"));
    my @args;
    for (1 .. $n) {
        return undef unless substr($$buf, $at) =~ /^\$(\d+)\r\n/;
        my $len = $1;
        $at += length("\$$len\r\n");
        return undef if length($$buf) < $at + $len + 2;
        push @args, substr($$buf, $at, $len);
        $at += $len + 2;
    }
    substr($$buf, 0, $at) = '';
    return \@args;
}

sub answer {
    my ($args, $sub, $master_port, $log, $subscribed_ping) = @_;
    my $cmd = uc($args->[0] // '');
    my $what = lc($args->[1] // '');
    if ($cmd eq 'PING') {
        return "+PONG\r\n" unless $$sub;
        return $subscribed_ping // array(bulk('pong'), bulk($args->[1] // ''));
    }
    return "+OK\r\n" if $cmd eq 'AUTH';
    if ($cmd eq 'PSUBSCRIBE' || $cmd eq 'SUBSCRIBE') {
        $$sub = 1;
        my $i = 0;
        return join '', map { array(bulk(lc $cmd), bulk($_), ':' . ++$i
            . "\r\n") } @$args[1 .. $#$args];
    }
    if ($cmd eq 'SENTINEL' && $what eq 'get-master-addr-by-name') {
        if (open my $fh, '>>', $log) {
            print $fh "asked\n";
            close $fh;
        }
        return array(bulk('127.0.0.1'), bulk($master_port));
    }
    return "*0\r\n" if $cmd eq 'SENTINEL'
        && ($what eq 'replicas' || $what eq 'slaves');
    return "-ERR unknown command '$cmd'\r\n";
}

# Serves until its test process is gone (checked every half second).
sub run {
    my ($listen, $master_port, $log, $parent, $subscribed_ping) = @_;
    my (%buf, %sub);
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    my $sel = IO::Select->new($listen);
    while (getppid() == $parent) {
        for my $s ($sel->can_read(0.5)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                $sub{$c} = 0;
                next;
            }
            my $n = sysread($s, $buf{$s}, 65536, length $buf{$s});
            if (!$n) {
                $sel->remove($s);
                delete $buf{$s};
                delete $sub{$s};
                close $s;
                next;
            }
            my $out = '';
            while (my $args = command(\$buf{$s})) {
                $out .= answer($args, \$sub{$s}, $master_port, $log,
                               $subscribed_ping);
            }
            syswrite($s, $out) if length $out;
        }
    }
}

1;
