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

for my $file (qw(offload-sidecar offloadctl ngx_http_offload_module.so
    examples/offload_example.so))
{
    my $path = build_path($file);
    my $out = `$check --nocfprotection $path 2>&1`;
    is($? >> 8, 0, "hardening-check passes on $file") or diag($out);
    for my $feature ('Stack protected', 'Fortify Source functions',
        'Read-only relocations', 'Immediate binding')
    {
        like($out, qr/^ \Q$feature\E: yes/m, "$file: $feature");
    }
    like($out, qr/^ Position Independent Executable: yes/m, "$file: PIE")
        unless $file =~ /\.so$/;
}

done_testing();
