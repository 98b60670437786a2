#!/usr/bin/perl
# A log reader that stops reading (a stalled journal or container log
# driver, a terminal paused with Ctrl-S, a `| less` left open) never stops
# the sidecar: a line waits 100 ms at most for it, then lines are counted
# lost until it reads again, and the first line it gets then says how many.
# Meanwhile the node's registry entry, offloadctl status and offload_metrics
# say how many were lost.  Staged on the kinds of target that block: stderr
# a pipe, a FIFO as the log file (JSON lines), a syslog socket, stderr a
# terminal paused with Ctrl-S.
# (Before: the first write to a full pipe blocked the worker, every job
# after it was answered 504 30 s later, and the supervisor stopped at its
# next line too.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::UNIX;
use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX qw(mkfifo);
use Socket qw(SOCK_DGRAM);
use OffloadTest;

my $dir = tmpdir();
my $queues = "queue echo { handler echo; workers 1; }\n";
my $ctl = build_path('offloadctl');

start_redis();

# Echo jobs in turn (jobs_in_turn; offload_timeout 5s: one held by a
# blocked log fails in 5 s, not 30).
sub jobs_answered { jobs_in_turn('/jobs/echo', $_[0]) }

# After a sidecar's restart: each nginx worker sees its node (one may still
# answer no_workers from its registry read during the node's stop).
sub serving {
    ok(wait_until(sub { jobs_answered(20) eq '20' }, scaled(10),
        'jobs answered'), $_[0]);
}

# The whole lines a reader wrote to a file so far (not one it is writing).
sub whole_lines {
    my $text = slurp($_[0]);
    $text =~ s/[^\n]+\z//;
    return split /\n/, $text;
}

# The lines the node says it lost, by its registry entry.
sub node_lost { (node_doc() // {})->{log_lines_lost} // 0 }

# A reader of a FIFO into a file, which the test can stop and continue.
# The test holds a read end too (which never reads), so that the FIFO has
# a reader from the start: the sidecar's open does not wait for one.
my @held;
sub fifo_reader {
    my ($name, $out) = @_;
    my $fifo = "$dir/$name.fifo";
    mkfifo($fifo, 0600) or die "mkfifo: $!";
    sysopen(my $fh, $fifo, O_RDONLY | O_NONBLOCK) or die "$fifo: $!";
    push @held, $fh;
    spawn($name, $out, {}, 'cat', $fifo);
    return $fifo;
}

# ---- stderr a pipe whose reader stops
my $fifo = fifo_reader('stderr-reader', "$dir/sidecar.stderr");
start_sidecar(log => 'stderr debug', stderr => $fifo, conf => $queues);
ok(start_jobs_nginx(server => "    offload_timeout 5s;\n"
    . "    location = /metrics { offload_metrics; }\n"), 'stack ready');
is(jobs_answered(5), 5, 'jobs answered while the log is read');

kill 'STOP', proc_pid('stderr-reader');
is(jobs_answered(1000), 1000,
    '1000 jobs answered 200 while the reader of its stderr reads nothing');
ok(wait_until(sub { node_lost() > 0 }, scaled(5), 'lost lines counted'),
    'the node\'s registry entry counts the lines lost: ' . node_lost());
my $status = `$ctl -c ${\sidecar_conf_file()} status`;
like($status, qr/^  LOG \d+ lines? lost \(/m, 'offloadctl status says so')
    or diag($status);
like(http('GET', '/metrics')->{content},
    qr/^offload_node_log_lines_lost_total\{node="\Q${\node_name()}\E"\} [1-9]/m,
    'offload_metrics has the count');

kill 'CONT', proc_pid('stderr-reader');
my $said = qr/\[warn\] \d+ \d+ log lines? lost: its reader took none within 100 ms\n/;
ok(wait_until(sub { jobs_answered(1) eq '1'
                    && slurp("$dir/sidecar.stderr") =~ $said },
    scaled(10), 'the lost lines said'),
    'once it reads again, the first line says how many were lost');
my @cut = grep { !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[\w+\] \d+ / }
    whole_lines("$dir/sidecar.stderr");
is(scalar(@cut), 0, 'every line it got is whole') or diag(explain \@cut);
is(stop_sidecar(), 0, 'the sidecar stops cleanly');

# ---- a FIFO as the log file, JSON lines
my $log = fifo_reader('fifo-reader', "$dir/sidecar.log");
start_sidecar(log => "$log debug json", conf => $queues);
serving('a sidecar logging JSON lines into a FIFO serves');
kill 'STOP', proc_pid('fifo-reader');
is(jobs_answered(1000), 1000, '1000 jobs answered 200 with its log a FIFO '
    . 'nobody reads');
kill 'CONT', proc_pid('fifo-reader');
my @lines;
ok(wait_until(sub {
        jobs_answered(1) eq '1' or return 0;
        @lines = map { json_decode($_) // { unparsed => $_ } }
            whole_lines("$dir/sidecar.log");
        grep { ($_->{message} // '') =~ /^\d+ log lines? lost: its reader/ }
            @lines;
    }, scaled(10), 'the lost lines said in JSON'),
    'the first line once it reads says how many were lost');
is(scalar(grep { $_->{unparsed} } @lines), 0, 'every line is JSON')
    or diag(explain [ grep { $_->{unparsed} } @lines ]);
is(stop_sidecar(), 0, 'the sidecar stops cleanly');

# a FIFO nobody reads at all: an error at start, not a wait for a reader
mkfifo("$dir/unread.fifo", 0600) or die "mkfifo: $!";
spew("$dir/unread.conf", "redis 127.0.0.1:${\redis_port()};\n"
    . "log $dir/unread.fifo;\n$queues");
my $out = `timeout 10 ${\build_path('offload-sidecar')} -c $dir/unread.conf 2>&1`;
is($? >> 8, 1, 'a sidecar whose log is a FIFO without a reader exits 1');
like($out, qr/cannot open log "\Q$dir\E\/unread.fifo": No such device/,
    '... saying why') or diag($out);

# ---- a syslog daemon not there yet, then one that stops reading
for my $target ("syslog:unix:$dir/syslog.sock",
                "syslog:server=unix:$dir/syslog.sock,facility=local7",
                "syslog:server=unix:syslog.sock",
                "syslog:server=unix:/" . ('x' x 107)) {
    spew("$dir/bad.conf", "log $target;\n$queues");
    my $bad = `${\build_path('offload-sidecar')} -t -c $dir/bad.conf 2>&1`;
    like($bad, qr/invalid log target "\Q$target\E" \(expected syslog or syslog:server=unix:\/path/,
        "log $target is refused, saying what is taken");
}
start_sidecar(log => "syslog:server=unix:$dir/syslog.sock debug",
    conf => $queues);
serving('a sidecar whose syslog daemon is not there yet serves');
like(slurp("$dir/sidecar.stderr"),
    qr/syslog \Q$dir\E\/syslog.sock: No such file or directory \(lines are counted lost/,
    '... saying on stderr that its lines are lost meanwhile');
my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM,
    Local => "$dir/syslog.sock") or die "syslog socket: $!";
my @got;
my $drain = sub {
    $sock->blocking(0);
    while (defined(my $from = $sock->recv(my $msg, 65536))) {
        last if $msg eq '';
        push @got, $msg;
    }
};
ok(wait_until(sub { jobs_answered(1) eq '1' or return 0; $drain->();
                    grep { /log lines? lost: syslog / } @got },
    scaled(10), 'syslog connected'),
    'once the daemon is there, it is told how many lines were lost') or
    diag(explain \@got);
like((grep { /log lines? lost/ } @got)[0] // '',
    qr/^<28>\w{3} [ \d]\d \d\d:\d\d:\d\d offload-sidecar\[\d+\]: \d+ log lines? lost: syslog \Q$dir\E\/syslog.sock: No such file or directory$/,
    'as syslog(3) would send it: daemon.warning, time, ident[pid]');
@got = ();
# more lines than the socket queues (net.unix.max_dgram_qlen)
my $qlen = slurp('/proc/sys/net/unix/max_dgram_qlen') || 512;
my $n = 2 * $qlen + 300;
is(jobs_answered($n), $n,
    "$n jobs answered 200 while the daemon reads nothing");
$drain->();
note(scalar(@got) . ' messages were queued');
ok(wait_until(sub { jobs_answered(1) eq '1' or return 0; $drain->();
                    grep { /log lines? lost/ } @got },
    scaled(10), 'the lost lines said to syslog'),
    'once it reads again, it is told how many were lost');
like((grep { /log lines? lost/ } @got)[0] // '',
    qr/^<28>\w{3} [ \d]\d \d\d:\d\d:\d\d offload-sidecar\[\d+\]: \d+ log lines? lost: its reader took none within 100 ms$/,
    '... and how many it did not read');
is(stop_sidecar(), 0, 'the sidecar stops cleanly');

# ---- stderr a terminal, paused with Ctrl-S (t/lib/pty_relay.py)
spew("$dir/tty.conf", "redis 127.0.0.1:${\redis_port()};\n"
    . "node_name ${\node_name()};\nlog stderr debug;\n$queues");
spawn('terminal', "$dir/terminal.log", { PTY_OUT => "$dir/terminal.out" },
    'python3', "$FindBin::Bin/lib/pty_relay.py",
    build_path('offload-sidecar'), '-c', "$dir/tty.conf");
serving('a sidecar logging to a terminal serves');
kill 'USR1', proc_pid('terminal');
is(jobs_answered(1000), 1000,
    '1000 jobs answered 200 while its terminal is paused (Ctrl-S)');
kill 'USR2', proc_pid('terminal');
ok(wait_until(sub { jobs_answered(1) eq '1'
                    && slurp("$dir/terminal.out") =~ /lines? lost: its reader/ },
    scaled(10), 'the lost lines said on the terminal'),
    'after Ctrl-Q the terminal shows how many were lost');
is(stop_proc('terminal', 15), 0, 'that sidecar stops cleanly too');
my @bad = grep { /AddressSanitizer|runtime error|LeakSanitizer/ }
    split /\n/, slurp("$dir/terminal.out");
is(scalar(@bad), 0, 'its terminal shows no sanitizer report')
    or diag(join "\n", @bad);

finish();
