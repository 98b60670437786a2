package AclRules;

# AclRules -- the Redis ACL users README.md documents (between its
# <!-- acl-rules --> markers), for the tests that log in as them.
#
#   my %rules = readme_acl_rules();   # user => [ its rules ]
#   my %secret = acl_secrets(%rules); # user => its password
#   my @default = readme_acl_default(); # the default user's rules

use strict;
use warnings;

use Exporter 'import';
use FindBin;
use OffloadTest;

our @EXPORT = qw(readme_acl_rules acl_secrets readme_acl_default);

# The documented `user` lines, unwrapped: a line that starts with spaces
# continues the one above.  Empty when README.md has none.
sub readme_acl_rules {
    my ($block) = slurp("$FindBin::Bin/../README.md")
        =~ /<!-- acl-rules -->\n```\n(.*?)```\n<!-- \/acl-rules -->/s;
    return () unless $block;
    $block =~ s/\n\s+/ /g;
    return map { /^user (\S+) (.*)$/ ? ($1 => [ split ' ', $2 ]) : () }
        split /\n/, $block;
}

# The rules of the `default` user README.md gives (between its
# <!-- acl-default --> markers): off, and what else it keeps.
sub readme_acl_default {
    my ($line) = slurp("$FindBin::Bin/../README.md")
        =~ /<!-- acl-default -->\n```\nuser default (.*?)\n```\n/s;
    return split ' ', $line // '';
}

sub acl_secrets {
    my (%rules) = @_;
    return map { $_ => (join ' ', @{ $rules{$_} }) =~ />(\S+)/ } keys %rules;
}

1;
