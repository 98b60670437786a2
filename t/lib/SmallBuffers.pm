package SmallBuffers;
# SmallBuffers -- runs the calling test file again in a network namespace
# of its own whose TCP buffers are small (tcp_rmem and tcp_wmem 4-64 KB):
# on loopback the socket buffers grow to megabytes, room enough for a big
# body's slices on their way, so a slice is never left half written.
# Needs root and iproute2's ip(8), else the test is skipped.  Call
# in_small_buffers($tag) first: in the namespace it returns, outside it
# exits with the child's status (its plan and results were the child's).

use strict;
use warnings;
use POSIX ();
use Test::More ();
use Exporter 'import';

our @EXPORT = qw(in_small_buffers);

sub in_small_buffers {
    my ($tag) = @_;
    return if $ENV{OFFLOAD_IN_NETNS};
    my $ns = "offload-$tag-$$";
    Test::More::plan(skip_all => 'needs root and ip(8) for a network '
        . 'namespace') unless $> == 0 && system("ip netns add $ns "
        . '2>/dev/null') == 0;
    my $ok = system('ip', 'netns', 'exec', $ns, 'ip', 'link', 'set', 'lo',
            'up') == 0
        && system('ip', 'netns', 'exec', $ns, 'sysctl', '-q', '-w',
            'net.ipv4.tcp_rmem=4096 16384 65536',
            'net.ipv4.tcp_wmem=4096 16384 65536') == 0;
    my $rc = $ok ? system('ip', 'netns', 'exec', $ns, 'env',
        'OFFLOAD_IN_NETNS=1', $^X, $0) : -1;
    system('ip', 'netns', 'del', $ns);
    Test::More::plan(skip_all => 'cannot set up the network namespace')
        unless $ok;
    POSIX::_exit($rc == -1 ? 255 : $rc >> 8);
}

1;
