package RedisMonitor;
# RedisMonitor -- a MONITOR client on the test's Redis, for tests that check
# what went over the wire: which commands, in which order, how big.  Each
# command is an array: Redis' timestamp, then its name and arguments
# (MONITOR prints them quoted and escaped; they are unescaped here).  Core
# Perl only.

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use OffloadTest qw(redis_cmd redis_port scaled);

my %UNESCAPE = (n => "\n", r => "\r", t => "\t", a => "\a", b => "\b");

# start() -> a monitor that has seen nothing yet
sub start {
    my ($class) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => redis_port(), Proto => 'tcp') or die "monitor: $!";
    syswrite($s, "MONITOR\r\n");
    my $self = bless { sock => $s, buf => '', seen => [] }, $class;
    redis_cmd('ECHO', 'monitor-ready');
    $self->wait_for(sub { $_[0][1] eq 'ECHO' }, 5)
        or die "MONITOR shows nothing\n";
    $self->{seen} = [];
    return $self;
}

# The commands read so far, oldest first.
sub seen { $_[0]{seen} }

# Drops every command Redis ran up to now, read or not.
sub forget {
    my ($self) = @_;
    # what it drops may hold big bodies, slow to parse under ASan and -j2
    $self->catch_up(scaled(20)) or die "MONITOR fell behind\n";
    $self->{seen} = [];
}

# A MONITOR line as (who ran it: "<client address>" or "lua" for a
# script's own commands, [time, name, args...]); () for anything else.
sub parse_line {
    my ($line) = @_;
    my ($ts, $from, $rest) = $line =~ /^\+(\d+\.\d+) \[\d+ ([^\]]*)\] (.*)\z/s
        or return ();
    my @args = ($ts);
    # unrolled: a (?:a|b)* over a 256 KB argument passes Perl's limit
    while ($rest =~ /"([^"\\]*+(?:\\.[^"\\]*+)*+)"/gs) {
        (my $arg = $1) =~ s{\\(?:x([0-9a-fA-F]{2})|(.))}
            {defined $1 ? chr hex $1 : ($UNESCAPE{$2} // $2)}gse;
        push @args, $arg;
    }
    return ($from, \@args);
}

# A command sent by a client, as [time, name, args...]; undef for anything
# else, and for the commands a script ran: its EVALSHA is seen.
sub command {
    my ($from, $cmd) = parse_line(@_);
    return $cmd && $from ne 'lua' ? $cmd : undef;
}

# Reads until a command satisfies $cond (returned) or $timeout s pass
# (undef); every command read is kept.
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($self->{sock});
    while (1) {
        while ((my $i = index($self->{buf}, "\r\n")) >= 0) {
            my $cmd = command(substr($self->{buf}, 0, $i));
            substr($self->{buf}, 0, $i + 2) = '';
            next unless $cmd;
            push @{ $self->{seen} }, $cmd;
            return $cmd if $cond->($cmd);
        }
        my $left = $deadline - time;
        return undef if $left <= 0 || !$sel->can_read($left);
        sysread($self->{sock}, $self->{buf}, 1 << 20, length $self->{buf})
            or return undef;
    }
}

# Reads what Redis ran up to now: its answer to an ECHO sent after them.
sub catch_up {
    my ($self, $timeout) = @_;
    my $mark = "monitor-mark-" . time;
    redis_cmd('ECHO', $mark);
    return $self->wait_for(sub { $_[0][1] eq 'ECHO' && $_[0][2] eq $mark },
        $timeout);
}

# The commands seen on a key (their first argument), without the time.
sub on_key {
    my ($self, $key) = @_;
    return map { [ @$_[1 .. $#$_] ] }
        grep { ($_->[2] // '') eq $key } @{ $self->{seen} };
}

# The length of the longest argument seen.
sub longest_arg {
    my ($self) = @_;
    my $max = 0;
    for my $cmd (@{ $self->{seen} }) {
        for my $arg (@$cmd[1 .. $#$cmd]) {
            $max = length $arg if length $arg > $max;
        }
    }
    return $max;
}

1;
