#!/usr/bin/perl
# C handler plugins (load_module, docs/HANDLERS.md): the example plugin
# built as the docs show, its handlers through nginx, per-worker init and
# fini, what `offload-sidecar -t` refuses, an init that fails, and a
# result that is not JSON.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $root = "$FindBin::Bin/..";
my $sidecar = build_path('offload-sidecar');
my $cc = $ENV{CC} // 'cc';

# ---- the example, built with the command docs/HANDLERS.md shows
my ($cmd) = slurp("$root/docs/HANDLERS.md")
    =~ /Build your own\s+the same way:\n\n```sh\n(.*?)\n```/s;
ok($cmd, 'docs/HANDLERS.md shows how to build a plugin') or BAIL_OUT('no');
$cmd =~ s/\\\n\s*/ /g;
$cmd =~ s/-o offload_example\.so/-o $dir\/offload_example.so/;
my $out = `cd $root && $cmd 2>&1`;
is($?, 0, "the documented command builds it: $cmd") or diag($out);
ok(-f "$dir/offload_example.so", 'offload_example.so built');
ok(-f build_path('examples/offload_example.so'),
    'make built build/examples/offload_example.so too');

# ---- plugins that are wrong, each refused by -t with file:line
sub plugin {
    my ($name, $c) = @_;
    spew("$dir/$name.c", "#include <unistd.h>\n#include \"offload.h\"\n$c");
    my $inc = "$root/sidecar/include";
    my $o = `$cc -shared -fPIC -I$inc -o $dir/$name.so $dir/$name.c 2>&1`;
    is($?, 0, "plugin $name compiles") or diag($o);
    return "$dir/$name.so";
}

my $run = 'static int run(offload_job_t *j, const char *p, size_t n) '
    . '{ return offload_job_result(j, p, n); }' . "\n";
my $nosym = plugin('nosym', $run . 'int not_a_module;');
my $abi = plugin('abi', $run . 'static const offload_handler_t h[] = '
    . '{ { "t.abi", run, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { 99, h };');
my $dup = plugin('dup', $run . 'static const offload_handler_t h[] = '
    . '{ { "example.reverse", run, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };');
my $shadow = plugin('shadow', $run . 'static const offload_handler_t h[] = '
    . '{ { "echo", run, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };');
my $undef = plugin('undef', 'int missing_symbol(void);'
    . 'static int run(offload_job_t *j, const char *p, size_t n) '
    . '{ (void) j; (void) p; (void) n; return missing_symbol(); }'
    . 'static const offload_handler_t h[] = '
    . '{ { "t.undef", run, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };');

my $example = "$dir/offload_example.so";
my $queue = "queue r { handler example.reverse; }\n";

sub sidecar_t {
    my ($name, $text) = @_;
    my $file = "$dir/$name.conf";
    spew($file, $text);
    my $o = `$sidecar -t -c $file 2>&1`;
    return ($? >> 8, $o, $file);
}

my ($rc, $msg, $file) = sidecar_t('good', "load_module $example;\n$queue");
is($rc, 0, '-t: the example loads') or diag($msg);

for my $case (
    [ 'missing', "\nload_module $dir/nope.so;\n$queue",
      qr/^\Q$dir\E\/missing\.conf:2: cannot load "\Q$dir\E\/nope\.so": .*No such file/ ],
    [ 'nosym', "load_module $nosym;\n$queue",
      qr/^\Q$dir\E\/nosym\.conf:1: "\Q$nosym\E" defines no "offload_module" symbol/ ],
    [ 'abi', "load_module $abi;\n$queue",
      qr/:1: "\Q$abi\E" was built for handler ABI version 99; this sidecar speaks versions 1 to 1/ ],
    [ 'dup', "load_module $example;\nload_module $dup;\n$queue",
      qr/:2: handler "example\.reverse" of "\Q$dup\E" is already defined by \Q$example\E/ ],
    # (before: 'handler "example.reverse" of X is already defined by X')
    [ 'twice', "load_module $example;\n\nload_module $example;\n$queue",
      qr/:3: "\Q$example\E" is loaded already, by the load_module of line 1$/m ],
    [ 'twice-relative',
      "load_module $example;\nload_module ./offload_example.so;\n$queue",
      qr/:2: "\Q$dir\E\/\.\/offload_example\.so" is loaded already, by the load_module of line 1$/m ],
    [ 'shadow', "load_module $shadow;\n$queue",
      qr/:1: handler "echo" of "\Q$shadow\E" is already defined by a built-in handler/ ],
    [ 'undef', "load_module $undef;\n$queue",
      qr/:1: cannot load "\Q$undef\E": .*undefined symbol: missing_symbol/ ],
    [ 'unknown', "load_module $example;\nqueue r {\n handler example.nope;\n}\n",
      qr/:3: unknown handler "example\.nope"/ ],
) {
    my ($name, $text, $want) = @$case;
    ($rc, $msg) = sidecar_t($name, $text);
    is($rc, 1, "-t refuses $name");
    like($msg, $want, "-t: $name: the message names file:line");
}

# A relative path is the config file's folder's.
($rc, $msg) = sidecar_t('relative', "load_module offload_example.so;\n$queue");
is($rc, 0, '-t: a path relative to the config file') or diag($msg);

# ---- the example's handlers through nginx
my $bad = plugin('badresult', 'static int run(offload_job_t *j, '
    . 'const char *p, size_t n) { (void) p; (void) n; '
    . 'return offload_job_result(j, "{nope", 5); }'
    . 'static int fails(const offload_slot_t *s) { (void) s; return -1; }'
    . 'static int hangs(const offload_slot_t *s) { (void) s; '
    . 'for (;;) pause(); }'
    . 'static int echo(offload_job_t *j, const char *p, size_t n) '
    . '{ return offload_job_result(j, p, n); }'
    . 'static int slow(const offload_slot_t *s) { (void) s; '
    . 'usleep(300000); return 0; }'
    . 'static int logs_init(const offload_slot_t *s) { '
    . 'offload_log_info("init of %s:%d", offload_slot_queue(s), '
    . 'offload_slot_index(s)); return 0; }'
    . 'static int logs(offload_job_t *j, const char *p, size_t n) '
    . '{ offload_log_warn("got %.*s", (int) n, p); '
    . 'return offload_job_result(j, p, n); }'
    . 'static int ran(offload_job_t *j, const char *p, size_t n) '
    . '{ (void) p; (void) n; return offload_job_result(j, '
    . 'offload_job_ran_before(j) ? "1" : "0", 1); }'
    . 'static const offload_handler_t h[] = '
    . '{ { "t.garbage", run, 0, 0 }, { "t.noinit", run, fails, 0 }, '
    . '{ "t.hanginit", run, hangs, 0 }, { "t.slowinit", echo, slow, 0 }, '
    . '{ "t.logs", logs, logs_init, 0 }, { "t.ran", ran, 0, 0 }, { 0 } };'
    . 'const offload_module_t offload_module = { OFFLOAD_ABI_VERSION, h };');

start_redis();
start_sidecar(conf => <<"CONF");
load_module $example;
load_module $bad;
queue reverse { handler example.reverse; workers 1; }
queue counter { handler example.counter; workers 2; }
queue garbage { handler t.garbage; workers 1; }
queue slowinit { handler t.slowinit; workers 2; init_timeout 5s; }
queue logs { handler t.logs; workers 1; }
queue ran { handler t.ran; workers 1; }
CONF
start_nginx(http => <<'HTTP');
server {
    listen 127.0.0.1:@PORT@;
    offload_redis @REDIS@;
    location ~ ^/jobs/([^/]+)$ { offload_pass $1; }
}
HTTP
ok(wait_nginx_ready('/jobs/reverse', '{"text":""}'), 'stack ready');

my $r = post_json('/jobs/reverse', '{"text":"abc"}');
is($r->{status}, 200, 'example.reverse: 200');
is($r->{content}, '{"text":"cba"}', 'example.reverse: abc -> cba');

# every function of offload.h is the sidecar's to a plugin (before:
# offload_job_ran_before() was not exported: the plugin did not load)
$r = post_json('/jobs/ran', '{}');
is("$r->{status} $r->{content}", '200 0',
    'offload_job_ran_before(): a plugin calls it, 0 on a first run');

# a handler's own log lines: at their level, tagged as the worker's are
$r = post_json('/jobs/logs', '{"say":"hi"}');
my $logs_id = $r->{headers}{'x-offload-job-id'} // '-';
is($r->{status}, 200, 'a handler that logs: 200');
ok(wait_until(sub { slurp(tmpdir() . '/sidecar.log') =~ /\[warn\] \d+ worker logs:0: handler: got \{"say":"hi"\} \(job \Q$logs_id\E,/ },
    scaled(5), 'its line'), 'offload_log_warn: a warn line with the job id')
    or diag(slurp(tmpdir() . '/sidecar.log'));
like(slurp(tmpdir() . '/sidecar.log'), qr/\[info\] \d+ worker logs:0: handler: init of logs:0$/m,
    'offload_log_info from init: an info line with the queue');

$r = post_json('/jobs/reverse', qq({"text":"h\\u00e9llo \xe2\x82\xac"}));
is($r->{content}, qq({"text":"\xe2\x82\xac oll\xc3\xa9h"}),
    'example.reverse: by character, UTF-8 stays valid');

$r = post_json('/jobs/reverse', '{"txt":"abc"}');
is($r->{status}, 422, 'example.reverse without text: 422');
is($r->{json} && $r->{json}{error}{code}, 'bad_input',
    'the plugin\'s own error code');
like($r->{json} && $r->{json}{error}{message}, qr/string "text"/,
    'and its message');

# The liboffload example submits to the same queue straight through Redis.
my $submit = build_path('examples/submit_example') . ' ' . redis_port();
$out = `$submit reverse '{"text":"xyz"}' 2>&1`;
is($?, 0, 'examples/c/submit_example: exit 0') or diag($out);
is($out, qq(200 {"text":"zyx"}\n), 'and the result, without HTTP');
$out = `$submit reverse '{"txt":1}' 2>&1`;
is($? >> 8, 1, 'submit_example: a 422 exits 1');
like($out, qr/^422 \{"error":\{"code":"bad_input"/, 'and prints the error');

# docs/HANDLERS.md's offloadctl lines, run as shown (the test's port;
# the id the first prints in the third), each checked against its comment.
my ($shell) = slurp("$root/docs/HANDLERS.md")
    =~ /From a shell, `offloadctl` does it for you:\n\n```sh\n(.*?)```/s;
my $ctl = build_path('offloadctl');
my $id;
for my $line (split /\n/, $shell // '') {
    my ($cmd, $says) = $line =~ /^(.*?)\s+#\s*(.*)$/ or next;
    $cmd =~ s/6379/redis_port()/e;
    $cmd =~ s/^offloadctl/$ctl/;
    $cmd =~ s/<job id>/$id/;
    my $got = `$cmd 2>&1`;
    is($?, 0, "HANDLERS.md: $line") or diag($got);
    if ($says eq 'prints the job id') {
        ($id) = $got =~ /^([0-9a-f]{32})$/m;
        ok($id, 'it printed a job id');
        my $look = "$ctl -r 127.0.0.1:" . redis_port() . " result reverse $id";
        ok(wait_until(sub { `$look 2>/dev/null` =~ /cba/ }, scaled(10),
            'its result'), 'the fire-and-forget job ran');
    } elsif ($says =~ /^prints (\{.*\})$/) {
        is($got, "$1\n", "it $says");
    } else {
        like($got, qr/"text":"cba"/, 'the stored result');
    }
}
ok(defined $id, 'HANDLERS.md shows offloadctl submit');

$r = post_json('/jobs/garbage', '{}');
is($r->{status}, 500, 'a result that is not JSON: 500');
is($r->{json} && $r->{json}{error}{code}, 'bad_result', 'bad_result');

# init ran once per worker, after the fork: each worker counts its own
# jobs from 1, under its own pid, which is a worker the sidecar runs.
my %seen;
for (1 .. 12) {
    $r = post_json('/jobs/counter', '{}');
    my $j = $r->{json} or next;
    push @{ $seen{$j->{pid}} }, $j->{jobs};
}
my @workers = grep { $_ } @{ worker_pids()->{counter} || [] };
ok(@workers == 2, 'two counter workers');
for my $pid (keys %seen) {
    ok((grep { $_ == $pid } @workers), "pid $pid is a counter worker");
    my @n = @{ $seen{$pid} };
    is_deeply(\@n, [1 .. @n], "worker $pid counted its jobs from 1");
}
is(eval { my $t = 0; $t += @$_ for values %seen; $t }, 12, '12 answers');

# An init slower than its workers' start but within init_timeout is left
# alone: its workers read jobs.
ok(wait_until(sub {
        ($r = post_json('/jobs/slowinit', '{"text":"ok"}'))->{status} == 200
    }, scaled(10), 'a slowinit job answered'),
    'a slow init within init_timeout: its workers run jobs')
    or diag("$r->{status} $r->{content}");

# fini: when the workers stop normally, each says what it did.
my $log = tmpdir() . '/sidecar.log';
my $stderr = tmpdir() . '/sidecar.stderr';
stop_nginx();
stop_sidecar();
my $said = slurp($stderr) . slurp($log);
for my $pid (keys %seen) {
    my $n = @{ $seen{$pid} };
    like($said, qr/example\.counter: worker $pid ran $n jobs/,
        "fini of worker $pid ran");
}
unlike($said, qr/init_timeout/, 'a slow init within init_timeout: not killed');

# A sidecar of its own for one queue, logging to $dir/<name>.log.
sub queue_sidecar {
    my ($name, $queue) = @_;
    my $conf = "$dir/$name.conf";
    spew($conf, "redis 127.0.0.1:" . redis_port() . ";\nnode_name n$$;\n"
        . "log $dir/$name.log info;\nheartbeat 200ms;\nload_module $bad;\n"
        . "queue $name { $queue }\n");
    spawn($name, "$dir/$name.stderr", {}, $sidecar, '-c', $conf);
}

# ---- an init that fails is a crash of its slot: a crash loop under the
# restart intensity, the pool failed, not a busy loop.
queue_sidecar('noinit', 'handler t.noinit; workers 1; '
    . 'max_restarts 3 10s; restart_cooldown 30s;');
ok(wait_until(sub { slurp("$dir/noinit.log") =~ /pool noinit failed/ },
    scaled(15), 'the noinit pool fails'), 'an init that fails: pool failed')
    or diag(slurp("$dir/noinit.log"));
my $inits = () = slurp("$dir/noinit.log") =~ /the init of handler t\.noinit failed/g;
is($inits, 4, 'init tried max_restarts + 1 times, then the cooldown');
like(slurp("$dir/noinit.log"), qr/pool noinit failed: 4 workers of slot 0 in a row ended before their handler's init succeeded \(the last: exit: exited with code 1: its handler's init failed\)/,
    'the pool failure says how the inits ended');
stop_proc('noinit', scaled(10));

# ---- an init that never returns (signals blocked, as they are during
# init) is killed init_timeout after the worker started: a crash of its
# slot too, not a worker "starting" for ever.
($rc, $msg) = sidecar_t('init_off', "load_module $bad;\n"
    . "queue q { handler t.hanginit; init_timeout off; }\n");
is($rc, 0, '-t: init_timeout off') or diag($msg);
($rc, $msg) = sidecar_t('init_zero', "load_module $bad;\n"
    . "queue q {\n handler t.hanginit;\n init_timeout 0;\n}\n");
is($rc, 1, '-t refuses init_timeout 0');
like($msg, qr/:4: "init_timeout" must be/, '-t: init_timeout 0: file:line') or diag($msg);

# Its starts are further apart than the restart period (100 ms): the
# pool fails all the same, at max_restarts + 1 such starts in a row.
queue_sidecar('hanginit', 'handler t.hanginit; workers 1; '
    . 'init_timeout 500ms; max_restarts 2 100ms; restart_cooldown 60s;');
ok(wait_until(sub { slurp("$dir/hanginit.log") =~ /pool hanginit failed/ },
    scaled(20), 'the hanginit pool fails'), 'an init that hangs: pool failed')
    or diag(slurp("$dir/hanginit.log"));
like(slurp("$dir/hanginit.log"), qr/pool hanginit failed: 3 workers of slot 0 in a row ended before their handler's init succeeded \(the last: init_timeout: killed by SIGKILL\), cooling down 60s/,
    'the pool failed for its starts in a row');
$log = slurp("$dir/hanginit.log");
my $kills = () = $log =~ /worker hanginit:0: the init of handler t\.hanginit ran past the 500 ms init_timeout, killing pid \d+/g;
is($kills, 3, 'killed at its init_timeout max_restarts + 1 times') or diag($log);
my $died = () = $log =~ /worker hanginit:0: pid \d+ killed by SIGKILL \(init_timeout\) while starting, holding no job/g;
is($died, 3, 'each one reported as an init_timeout crash, holding no job')
    or diag($log);
stop_proc('hanginit', scaled(10));


finish();
