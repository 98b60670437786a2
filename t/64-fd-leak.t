#!/usr/bin/perl
# A handler that leaks file descriptors (a file opened and never closed):
# its worker, or the process of an exec handler, recycles at 90% of its
# RLIMIT_NOFILE, between jobs, so that no job meets "Too many open files";
# the log, the slot's last_exit and the events stream say why, and each
# worker's open descriptors are in its registry entry and in
# offload_metrics beside its memory.  The sidecar runs under `prlimit
# --nofile=64`.  (Before: from the 57th job on, every job of the leaking
# worker failed with EMFILE for good, its pool "ok", no restart.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();

# A C plugin: t.leak opens /dev/null for each job and never closes it;
# t.hold opens 50 at its first job and keeps them, by design (a pool).
my $inc = "$FindBin::Bin/../sidecar/include";
spew("$dir/leak.c", <<'C');
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "offload.h"

static int
run(offload_job_t *job, const char *payload, size_t len)
{
    if (open("/dev/null", O_RDONLY) == -1) {
        return offload_job_fail(job, "io", strerror(errno));
    }

    return offload_job_result(job, payload, len);
}

static int
hold(offload_job_t *job, const char *payload, size_t len)
{
    static int  held;

    for ( ; held < 50; held++) {
        if (open("/dev/null", O_RDONLY) == -1) {
            return offload_job_fail(job, "io", strerror(errno));
        }
    }

    return offload_job_result(job, payload, len);
}

/* t.burst: "keep" opens until none is left and keeps them (a leak faster
 * than any count); anything else opens one and closes it */
static int
burst(offload_job_t *job, const char *payload, size_t len)
{
    int  fd, keep;

    keep = len >= 6 && memcmp(payload, "\"keep\"", 6) == 0;

    do {
        fd = open("/dev/null", O_RDONLY);
        if (fd == -1) {
            return offload_job_fail(job, "io", strerror(errno));
        }

        if (!keep) {
            close(fd);
        }
    } while (keep);

    return offload_job_result(job, payload, len);
}

static const offload_handler_t  handlers[] = {
    { "t.leak", run, NULL, NULL }, { "t.hold", hold, NULL, NULL },
    { "t.burst", burst, NULL, NULL }, { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_module = { OFFLOAD_ABI_VERSION, handlers };
C
my $cc = $ENV{CC} // 'cc';
my $out = `$cc -shared -fPIC -I$inc -o $dir/leak.so $dir/leak.c 2>&1`;
is($?, 0, 'the leaking plugin compiles') or diag($out);

start_redis();
start_sidecar(wrapper => [ 'prlimit', '--nofile=64:64', '--' ],
    conf => <<"CONF");
load_module $dir/leak.so;
queue leak { handler t.leak; workers 1; max_attempts 1; }
queue hold { handler t.hold; workers 1; max_attempts 1; }
queue pyleak { handler exec; workers 1; max_attempts 1;
               command "/usr/bin/python3 $FindBin::Bin/exec/leak_fds.py"; }
queue burst { handler t.burst; workers 1; max_attempts 1; prefetch 8; }
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(server => "    location = /metrics { offload_metrics; }\n"),
    'stack ready');

sub slot0 {
    my ($queue) = @_;
    my $doc = node_doc() or return {};
    return $doc->{queues}{$queue}{workers}[0] // {};
}

# ---- the live figure
ok(wait_until(sub { (slot0('echo')->{fds} // 0) > 0 }, scaled(5),
    'fds in the registry'),
    'a worker\'s open descriptors are in its registry entry: '
    . (slot0('echo')->{fds} // 'none'));
like(http('GET', '/metrics')->{content},
    qr/^offload_worker_open_fds\{node="[^"]+",queue="echo",slot="0"\} [1-9]/m,
    'and in offload_metrics');

# the count of a worker that has run no job yet is what it holds now, its
# Redis connection and its exec handler's process with it (it was the one
# made before either existed, until a first job)
sub open_fds { my @fd = glob("/proc/$_[0]/fd/*"); scalar @fd }
for my $queue (qw(hold pyleak)) {
    my ($shown, $held);
    ok(wait_until(sub {
        my $w = slot0($queue);
        return 0 unless $w->{pid} && defined $w->{fds};
        $shown = $w->{fds};
        $held = open_fds($w->{pid})
            + ($w->{handler_pid} ? open_fds($w->{handler_pid}) : 0);
        $shown == $held;
    }, scaled(5), "$queue fds"), "an idle $queue worker, no job run yet: "
        . "its count is what it holds ($shown, /proc says $held)");
}

# ---- a C plugin leaking one a job: 64 allowed, 57 (90%) recycles
is(jobs_in_turn('/jobs/leak', 300), 300, '300 jobs of a leaking C handler, '
    . 'each answered 200');
my $log = slurp("$dir/sidecar.log");
my @said = $log =~ /worker leak:0: recycling: (\d+) file descriptors open, of a limit of 64 \(a handler that leaks them\?\)/g;
ok(@said >= 3, scalar(@said) . ' recycles, each said with its count: '
    . "@said");
ok(!grep({ $_ < 57 || $_ >= 64 } @said), '... each at 90% of the limit');
like(slot0('leak')->{last_exit} // '', qr/^recycled: file_descriptors$/,
    'the slot\'s last exit says why');
ok(scalar(grep { ($_->{report}{reason} // '') eq 'file_descriptors' }
           @{ events('recycle') }),
    'so does the events stream');
unlike($log, qr/Too many open files/, 'no job met EMFILE');

# ---- a handler that holds many by design is no leak
is(jobs_in_turn('/jobs/hold', 200), 200, '200 jobs of a handler holding 50 of '
    . 'its 64 by design, each answered 200');
ok(wait_until(sub { (slot0('hold')->{fds} // 0) >= 50 }, scaled(5),
    'held fds counted'), 'its worker counts them: '
    . (slot0('hold')->{fds} // 'none'));
is(slot0('hold')->{restarts}, 0, 'and is not recycled for them');
is(slot0('echo')->{restarts}, 0, 'nor is a worker that leaks none');

# ---- an exec handler's process leaking one a job
is(jobs_in_turn('/jobs/pyleak', 200), 200, '200 jobs of a leaking exec handler, '
    . 'each answered 200');
like(slurp("$dir/sidecar.log"),
    qr/worker pyleak:0: recycling: (5[7-9]|6[0-3]) file descriptors open in its handler's process, of a limit of 64/,
    'its worker recycles when the handler\'s process nears the limit');

# ---- a leak faster than any count: the limit met in a batch of 8 jobs
# read at once.  The job that met it fails; the 6 read behind it would
# too: they are handed back to the queue unrun, and run again.
my @ids = map { sprintf '%032x', 0xb0 + $_ } 1 .. 8;
my $far = int(time * 1000) + 600_000;
redis_cmd('EVAL', <<'LUA', 1, 'offload:{burst}:jobs', $far, @ids);
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'v', 1, 'id', ARGV[i],
    'payload', i == 3 and '"keep"' or '"one"', 'deadline', ARGV[1],
    'submitted', ARGV[1] - 600000, 'attempt', 1)
end
LUA
my %status;
ok(wait_until(sub {
    %status = map { my $r = redis_cmd('GET', "offload:{burst}:result:$_");
                    defined $r && $r =~ /^OR1 \S+ (\d+) / ? ($_ => $1) : () }
              @ids;
    keys %status == 8;
}, scaled(10), 'burst jobs ended'), 'the 8 jobs of the batch ended');
is_deeply([ map { $status{$_} } @ids ], [ 200, 422, (200) x 6 ],
    'the job that met the limit failed; the rest, handed back, 200')
    or diag(explain \%status);
like(slurp("$dir/sidecar.log"),
    qr/worker burst:0: recycling: \d+ file descriptors open, of a limit of 64/,
    'recycled at that failure');

finish();
