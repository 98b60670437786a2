package LineDriver;

# LineDriver -- a client program driven a line at a time over its stdin
# and stdout (t/client/line_client.c, a Python script with
# offload_client.py), as the submitter tests run liboffload and the Python
# SDK:
#
#   my $d = start_driver(@cmd);     # open2; the program's pipes
#   my $line = line_of($d, $timeout);  # its next line, or undef
#   stop_drivers();                 # closes their stdin, reaps them

use strict;
use warnings;

use Exporter 'import';
use IO::Select;
use IPC::Open2;
use Time::HiRes qw(time);

our @EXPORT = qw(start_driver line_of stop_drivers);

my @drivers;

sub start_driver {
    my (@cmd) = @_;
    my ($out, $in);
    my $pid = open2($out, $in, @cmd);
    my $d = { pid => $pid, out => $out, in => $in, buf => '' };
    push @drivers, $d;
    return $d;
}

# The driver's next line within $timeout s, or undef.
sub line_of {
    my ($d, $timeout) = @_;
    my $end = time + $timeout;
    my $sel = IO::Select->new($d->{out});
    while ($d->{buf} !~ /\n/) {
        my $left = $end - time;
        return undef if $left <= 0 || !$sel->can_read($left);
        sysread($d->{out}, $d->{buf}, 4096, length $d->{buf}) or return undef;
    }
    $d->{buf} =~ s/^([^\n]*)\n// and return $1;
}

# Each driver sees the end of its input and exits: reaped here.
sub stop_drivers {
    for my $d (splice @drivers) {
        close $d->{in};
        waitpid($d->{pid}, 0);
    }
}

1;
