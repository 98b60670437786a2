#!/usr/bin/perl
# The kernel's OOM killer: the sidecar runs in a memory cgroup of its own
# (64 MB), a job allocates far more, the kernel kills its worker with
# SIGKILL.  The supervisor tells that apart from a SIGKILL someone sent
# (the cgroup's oom_kill counter grew): reason "oom", the client gets 502
# out_of_memory, and the worker is replaced.  Needs root and a writable
# cgroup v1 memory controller or cgroup v2 with the memory controller.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

plan skip_all => 'ASan reserves address space the cgroup would count'
    if sanitize();
plan skip_all => 'needs root to make a cgroup' if $> != 0;

my ($cg, $limit_file);
if (-w '/sys/fs/cgroup/memory') {                     # cgroup v1
    $cg = "/sys/fs/cgroup/memory/offload-test-$$";
    $limit_file = 'memory.limit_in_bytes';
} elsif (-e '/sys/fs/cgroup/cgroup.controllers'
         && slurp('/sys/fs/cgroup/cgroup.subtree_control') =~ /\bmemory\b/) {
    $cg = "/sys/fs/cgroup/offload-test-$$";            # cgroup v2
    $limit_file = 'memory.max';
}
plan skip_all => 'no writable memory cgroup' unless $cg && mkdir $cg;
END { rmdir $cg if $cg }

spew("$cg/$limit_file", 64 * 1024 * 1024);
spew("$cg/memory.memsw.limit_in_bytes", 64 * 1024 * 1024)
    if -e "$cg/memory.memsw.limit_in_bytes";
is(slurp("$cg/$limit_file") + 0, 64 * 1024 * 1024, 'a 64 MB cgroup');

start_redis();
# the sidecar (and so its workers) joins the cgroup, then execs
start_sidecar(wrapper => [ 'sh', '-c',
    "echo \$\$ > $cg/cgroup.procs && exec \"\$@\"", 'sh' ], conf => <<'CONF');
fault_handlers on;
queue hog { handler leak; workers 1; max_attempts 1; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(), 'stack ready');
like(slurp("$cg/cgroup.procs"), qr/\b${\ sidecar_pid()}\b/,
    'the sidecar runs in the cgroup');

my $old = worker_pids()->{hog}[0];
my $r = post_json('/jobs/hog', { mb => 256 }, scaled(30));
is($r->{status}, 502, 'a job past the cgroup limit: 502')
    or diag($r->{content});
is($r->{json} && $r->{json}{error}{code}, 'out_of_memory', 'out_of_memory');
is($r->{json} && $r->{json}{error}{reason}, 'oom', 'reason oom');
my ($crash) = grep { $_->{queue} eq 'hog' } @{ events('crash') };
is($crash && $crash->{report}{reason}, 'oom', 'crash report: oom');
is($crash && $crash->{report}{signal}, 'SIGKILL', 'by the kernel\'s SIGKILL');
ok(wait_until(sub { my $p = worker_pids()->{hog}[0]; $p && $p != $old },
    10, 'hog replaced'), 'the worker was replaced');
is(post_json('/jobs/echo', {})->{status}, 200, 'the other queue answers');

# a SIGKILL sent by someone is not an oom
$old = worker_pids()->{echo}[0];
kill 'KILL', $old;
ok(wait_until(sub { grep { $_->{report}{pid} == $old } @{ events('crash') } },
    10, 'crash event'), 'a killed echo worker is reported');
my ($killed) = grep { $_->{report}{pid} == $old } @{ events('crash') };
is($killed->{report}{reason}, 'signal', 'as a signal, not oom');

finish();
