#!/usr/bin/perl
# Plugins that would take the supervisor down while it loads them: a
# handler table without its { NULL } end (read past, a wild pointer), a
# constructor that crashes, one that never returns.  Each is loaded in a
# child first: `offload-sidecar -t` refuses it with file:line and why, and a
# reload that adds it is refused while the running node serves on.  And a
# handler that forks, its child returning from run as the parent does: the
# child is ended there, said, before it runs a worker's loop of its own.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;

my $dir = tmpdir();
my $inc = "$FindBin::Bin/../sidecar/include";
my $sidecar = build_path('offload-sidecar');
my $cc = $ENV{CC} // 'cc';

sub plugin {
    my ($name, $c) = @_;
    spew("$dir/$name.c", "#include <unistd.h>\n#include \"offload.h\"\n"
        . 'static int run(offload_job_t *j, const char *p, size_t n) '
        . "{ return offload_job_result(j, p, n); }\n$c");
    my $o = `$cc -shared -fPIC -I$inc -o $dir/$name.so $dir/$name.c 2>&1`;
    is($?, 0, "plugin $name compiles") or diag($o);
    return "$dir/$name.so";
}

# a table of one entry, followed by a pointer that is no name: where a
# table ends without { NULL }, whatever follows it is read as the next
my $unended = plugin('unended', 'static const struct { '
    . 'offload_handler_t h[1]; const char *after[4]; } t = '
    . '{ { { "t.unended", run, 0, 0 } }, { (const char *) 8 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, t.h };');
my $module = 'static const offload_handler_t h[] = '
    . '{ { "t.h", run, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };';
my $crashes = plugin('crashes', '__attribute__((constructor)) static void '
    . 'boom(void) { *(volatile int *) 0 = 1; }' . $module);
my $hangs = plugin('hangs', '__attribute__((constructor)) static void '
    . 'forever(void) { for (;;) pause(); }' . $module);

my $forks = plugin('forks', "#include <sys/wait.h>\n"
    . 'static int twice(offload_job_t *j, const char *p, size_t n) '
    . '{ pid_t c = fork(); int rc = offload_job_result(j, p, n); '
    . 'if (c > 0) waitpid(c, 0, 0); return rc; }'
    . 'static const offload_handler_t h[] = '
    . '{ { "t.forks", twice, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };');

my $queue = "queue echo { handler echo; workers 1; }\n";

sub sidecar_t {
    my ($name, $text) = @_;
    my $file = "$dir/$name.conf";
    spew($file, $text);
    my $t0 = time;
    my $o = `$sidecar -t -c $file 2>&1`;
    return ($?, $o, time - $t0);
}

for my $case (
    [ 'unended', $unended, qr/:3: loading "\Q$unended\E" crashed \(SIGSEGV\): a handler table without its \{ NULL \} end/ ],
    [ 'crashes', $crashes, qr/:3: loading "\Q$crashes\E" crashed \(SIGSEGV\)/ ],
    [ 'hangs', $hangs, qr/:3: loading "\Q$hangs\E" did not end in 2000 ms/ ],
) {
    my ($name, $so, $want) = @$case;
    my ($rc, $msg, $took) = sidecar_t($name, "$queue\nload_module $so;\n");
    is($rc >> 8, 1, "-t refuses $name (exit 1, not a signal: $rc)");
    like($msg, $want, "-t: $name: file:line and why") or diag($msg);
    ok($took < scaled(5), sprintf('-t: %s: answered in %.1f s', $name,
        $took)) if $name eq 'hangs';
}

# ---- a reload adding the plugin: refused, the node serves on
start_redis();
start_sidecar(conf => "load_module $forks;\n$queue"
    . "queue forks { handler t.forks; workers 1; }\n");
ok(start_jobs_nginx(), 'stack ready');
my $log = tmpdir() . '/sidecar.log';
is(join(' ', map { post_json('/jobs/forks', { n => $_ })->{content} } 1 .. 3),
    '{"n":1} {"n":2} {"n":3}', 'a handler whose child returns too: '
    . 'every job answered its own result');
my @said = slurp($log) =~ /(a process the handler "t\.forks" forked \(pid \d+\) returned from it into the worker: ended)/g;
is(scalar @said, 3, 'each child ended, said') or diag(slurp($log));
unlike(slurp($log), qr/protocol error|out of step/,
    'no Redis link confused');
my $pid = sidecar_pid();
my $conf = sidecar_conf_file();
spew($conf, slurp($conf) . "load_module $unended;\n"
    . "queue bad { handler t.unended; }\n");
kill 'HUP', $pid;
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log')
        =~ /reload refused, the running configuration stays: .*crashed \(SIGSEGV\)/ },
    scaled(10), 'reload refused'), 'the reload is refused, the log says why');
ok(alive('sidecar') && sidecar_pid() == $pid, 'the supervisor lives');
is(post_json('/jobs/echo', { after => 'reload' })->{status}, 200,
    'jobs are answered after it');

finish();
