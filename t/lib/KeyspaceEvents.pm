package KeyspaceEvents;
# KeyspaceEvents -- the keyspace events of the keys matching a pattern, on
# a connection of its own to the test's Redis (database 0), for tests that
# check what happened to a key rather than what was sent: a key made
# again, removed, given a lifetime.  The caller sets notify-keyspace-events
# (e.g. Klg).  Core Perl only.

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use OffloadTest qw(redis_cmd redis_port scaled);

my $MARKER = 'offload:test:keyspace-marker';

# start($pattern) -> a watcher subscribed to the keys matching $pattern
sub start {
    my ($class, $pattern) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => redis_port(), Proto => 'tcp') or die "events: $!";
    syswrite($s, "PSUBSCRIBE __keyspace\@0__:$pattern\r\n"
        . "SUBSCRIBE $MARKER\r\n");
    my $self = bless { sock => $s, sel => IO::Select->new($s), buf => '' },
        $class;
    $self->read_until(qr/subscribe\r\n\$\d+\r\n\Q$MARKER\E\r\n/);
    return $self;
}

# Reads until the buffer matches $re, or nothing comes for 5 s.
sub read_until {
    my ($self, $re) = @_;
    while ($self->{buf} !~ $re && $self->{sel}->can_read(scaled(5))) {
        sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf})
            or last;
    }
}

# The events seen since start() or the last call, in order ("rpush",
# "expire", "del"...): all of them, up to a marker published now.
sub events {
    my ($self) = @_;
    redis_cmd('PUBLISH', $MARKER, 'end');
    $self->read_until(qr/\$3\r\nend\r\n/);
    my @seen = $self->{buf} =~ /pmessage\r\n\$\d+\r\n[^\r]*\r\n\$\d+\r\n
        [^\r]*\r\n\$\d+\r\n(\w+)\r\n/gx;
    $self->{buf} = '';
    return @seen;
}

1;
