#!/usr/bin/perl
# The binaries and the module are built hardened (the Makefile's
# HARDEN_CFLAGS / HARDEN_LDFLAGS): Debian's hardening-check finds PIE, the
# stack protector, FORTIFY_SOURCE functions, RELRO and BIND_NOW in each.
# Control-flow protection is compiled in (-fcf-protection) but cannot show:
# bookworm's crt1.o/crti.o carry no IBT/SHSTK note, so the linker drops it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

plan skip_all => 'the ASan build leaves FORTIFY_SOURCE out' if sanitize();
my $check = '/usr/bin/hardening-check';
plan skip_all => 'hardening-check (devscripts) is not installed'
    unless -x $check;

# The example plugin calls no function FORTIFY_SOURCE can check (its one
# memcpy's size is known only at run time; it logs with offload_log_info,
# not stdio), so hardening-check, which looks for the checked variants,
# finds "only unprotected functions": it is built with the same flags as
# the rest, its other protections are checked.
my %unfortified = ('examples/offload_example.so' => 1);

for my $file (qw(offload-sidecar offloadctl ngx_http_offload_module.so
    examples/offload_example.so))
{
    my $path = build_path($file);
    my $nofortify = $unfortified{$file} ? '--nofortify' : '';
    my $out = `$check --nocfprotection $nofortify $path 2>&1`;
    is($? >> 8, 0, "hardening-check passes on $file") or diag($out);
    for my $feature ('Stack protected', 'Fortify Source functions',
        'Read-only relocations', 'Immediate binding')
    {
        next if $feature =~ /Fortify/ && $unfortified{$file};
        like($out, qr/^ \Q$feature\E: yes/m, "$file: $feature");
    }
    like($out, qr/^ Position Independent Executable: yes/m, "$file: PIE")
        unless $file =~ /\.so$/;
}

done_testing();
