#!/usr/bin/perl
# Configuration errors: `offload-sidecar -t` and `nginx -t` reject bad files
# with a message that names the place, and accept good ones.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $dir = tmpdir();
my $sidecar = build_path('offload-sidecar');

# Runs `offload-sidecar -t -c <file with $text>`; returns (exit, output, file).
sub sidecar_t {
    my ($name, $text) = @_;
    my $file = "$dir/$name.conf";
    spew($file, $text);
    my $out = `$sidecar -t -c $file 2>&1`;
    return ($? >> 8, $out, $file);
}

my $good = <<'CONF';
# a good file
redis 127.0.0.1:6379;
node_name "alpha";
log stderr info;
heartbeat 1s;
result_ttl 2m;
queue echo {
    handler echo;
    workers 2;
    prefetch 16;
}
queue sha256 { handler 'sha256'; }
queue events.aggregate { handler events.aggregate; workers 1; }
CONF
my ($rc, $out) = sidecar_t('good', $good);
is($rc, 0, 'sidecar -t: good file exits 0') or diag($out);
like($out, qr/syntax is ok/, 'sidecar -t: "syntax is ok"');

($rc, $out) = sidecar_t('wait-all', "redis 127.0.0.1:6379 "
    . "wait_replicas=all;\nqueue q { handler echo; }\n");
is($rc, 0, 'sidecar -t: redis ... wait_replicas=all is taken') or diag($out);

($rc, $out) = sidecar_t('cluster', "redis cluster://127.0.0.1:7000,"
    . "127.0.0.1;\nqueue q { handler echo; }\nqueue r {\n    handler echo;\n"
    . "    redis cluster://127.0.0.1:7001;\n}\n");
is($rc, 0, 'sidecar -t: redis cluster://seeds, top level and in a queue')
    or diag($out);
for my $n (1, 'all') {
    ($rc, $out) = sidecar_t("cluster-wait-$n", "redis cluster://127.0.0.1:7000"
        . " wait_replicas=$n;\nqueue q { handler echo; }\n");
    is($rc, 0, "sidecar -t: redis cluster://... wait_replicas=$n is taken")
        or diag($out);
}

spew("$dir/plain", "not a program\n");
chmod 0644, "$dir/plain";

# [ name, text, line of the error (undef: any), message pattern ]
my @bad = (
    [ 'unknown directive', "redis 127.0.0.1:6379;\nfrobnicate 1;\n"
        . "queue echo { handler echo; }\n", 2, qr/frobnicate/ ],
    [ 'unknown handler', "redis 127.0.0.1:6379;\nqueue q {\n"
        . "    handler nope;\n}\n", 3, qr/nope|handler/ ],
    [ 'workers 0', "queue q {\n    handler echo;\n\n    workers 0;\n}\n",
        4, qr/workers/ ],
    [ 'workers 257', "queue q {\n    handler echo;\n    workers 257;\n}\n",
        3, qr/workers/ ],
    [ 'prefetch 1001', "queue q {\n    handler echo;\n    prefetch 1001;\n}\n",
        3, qr/prefetch/ ],
    [ 'duplicate queue', "queue q { handler echo; }\n\nqueue q {\n"
        . "    handler echo;\n}\n", 3, qr/duplicate|q/ ],
    [ 'bad queue name', "queue echo { handler echo; }\nqueue \"bad name\" {"
        . " handler echo; }\n", 2, qr/queue|name/ ],
    [ 'duplicate directive', "redis 127.0.0.1:6379;\nredis 127.0.0.1:6380;\n"
        . "queue q { handler echo; }\n", 2, qr/redis|duplicate/ ],
    [ 'bad time', "heartbeat abc;\nqueue q { handler echo; }\n", 1,
        qr/heartbeat|abc/ ],
    [ 'bad redis address', "\n\nredis 127.0.0.1:notaport;\n"
        . "queue q { handler echo; }\n", 3, qr/redis|address/ ],
    [ 'exec command: no such file', "queue q {\n    handler exec;\n"
        . "    command \"/nonexistent/prog --x\";\n}\n", 3,
        qr{queue "q": command "/nonexistent/prog" cannot run: No such file} ],
    [ 'exec command: not executable', "queue q {\n    handler exec;\n"
        . "    command \"$dir/plain\";\n}\n", 3,
        qr{command "\Q$dir\E/plain" cannot run: Permission denied} ],
    [ 'exec command: not in PATH', "queue q { handler exec;\n"
        . "    command \"no-such-program-anywhere x\"; }\n", 2,
        qr{command "no-such-program-anywhere": no such program in PATH} ],
    [ 'missing handler', "queue q {\n    workers 2;\n}\n", undef,
        qr/handler/ ],
    [ 'no queues', "redis 127.0.0.1:6379;\n", undef, qr/queue/ ],
    [ 'missing brace', "queue q {\n    handler echo;\n", undef, qr/./ ],
    [ 'missing semicolon', "redis 127.0.0.1:6379\nqueue q { handler echo; }\n",
        undef, qr/./ ],
    [ 'unterminated string', "node_name \"abc;\nqueue q { handler echo; }\n",
        undef, qr/./ ],
    [ 'bad log level', "log stderr loud;\nqueue q { handler echo; }\n", 1,
        qr/loud|level|log/ ],
    # (before: the last one won, silently)
    [ 'log level twice', "log stderr info debug;\nqueue q { handler echo; }\n",
        1, qr/log level given twice \("debug"\)/ ],
    [ 'log format twice', "log stderr json text;\nqueue q { handler echo; }\n",
        1, qr/log format given twice \("text"\)/ ],
    [ 'times out of order', "heartbeat 30s1m;\nqueue q { handler echo; }\n",
        1, qr/heartbeat/ ],
    [ 'a unit twice', "heartbeat 1s1s;\nqueue q { handler echo; }\n", 1,
        qr/heartbeat/ ],
    [ 'bad wait_replicas', "redis 127.0.0.1:6379 wait_replicas=every;\n"
        . "queue q { handler echo; }\n", 1,
        qr/wait_replicas=every.*wait_replicas=0\.\.16 or all/ ],
    [ 'cluster with db', "redis cluster://127.0.0.1:7000;\ndb 2;\n"
        . "queue q { handler echo; }\n", 1,
        qr/"db" 2 with a "redis cluster:\/\/\.\.\.": .* only db 0/ ],
    [ 'cluster queue with db', "db 1;\nqueue q {\n    handler echo;\n"
        . "    redis cluster://127.0.0.1:7000;\n}\n", 4,
        qr/a Redis Cluster has only db 0/ ],
    [ 'bad cluster seed', "redis cluster://127.0.0.1:7000,;\n"
        . "queue q { handler echo; }\n", 1,
        qr/invalid cluster seed "" in "cluster:\/\/127\.0\.0\.1:7000,"/ ],
);
for my $case (@bad) {
    my ($name, $text, $line, $re) = @$case;
    (my $fname = $name) =~ s/\W+/-/g;
    my ($rc, $out, $file) = sidecar_t($fname, $text);
    isnt($rc, 0, "sidecar -t, $name: non-zero exit");
    ok($rc < 128, "sidecar -t, $name: no crash") or diag($out);
    my $where = defined $line ? qr/\Q$file\E:$line: / : qr/\Q$file\E:\d+: /;
    like($out, $where, "sidecar -t, $name: file:line: message"
        . (defined $line ? " (line $line)" : ''));
    like($out, $re, "sidecar -t, $name: message says what") ;
}
($rc, $out) = sidecar_t('exec-good', "queue q { handler exec;"
    . " command \"sh -c 'exit 0'\"; }\n");
is($rc, 0, 'sidecar -t: a command found in PATH')
    or diag($out);

$out = `$sidecar -t -c $dir/does-not-exist.conf 2>&1`;
isnt($? >> 8, 0, 'sidecar -t on a missing file: non-zero exit');
like($out, qr/does-not-exist\.conf/, 'and names the file');

# ---- nginx -t
my $server = "server {\n    listen 127.0.0.1:1;\n    %s\n}\n";
($rc, $out) = nginx_test(http => "offload_redis 127.0.0.1:6379;\n"
    . "offload_timeout 5s;\noffload_validate_json on;\n" . sprintf($server,
    'location ~ ^/jobs/(.+)$ { offload_pass $1; offload_timeout 1m; }'
    . "\n    location /x { offload_pass echo; offload_validate_json off;"
    . " offload_redis unix:/tmp/r.sock db=2 password=secret; }"
    . "\n    location /status { offload_status; }"
    . "\n    location /metrics { offload_metrics; }"
    . "\n    location /dash { offload_dashboard; }"
    . "\n    location /u { offload_pass a; offload_mode async;"
    . " offload_jobs_url https://api.example.com/v1/jobs/; }"));
is($rc, 0, 'nginx -t: good conf') or diag($out);
($rc, $out) = nginx_test(http => "offload_metrics_zone 2m;\n"
    . sprintf($server, 'location /a { offload_pass a; }'));
is($rc, 0, 'nginx -t: offload_metrics_zone 2m') or diag($out);
($rc, $out) = nginx_test(http => "offload_metrics_zone off;\n"
    . sprintf($server, 'location /a { offload_pass a; }'));
is($rc, 0, 'nginx -t: offload_metrics_zone off') or diag($out);
($rc, $out) = nginx_test(http => "offload_metrics_zone 1k;\n"
    . sprintf($server, 'location /a { offload_pass a; }'));
isnt($rc, 0, 'nginx -t: offload_metrics_zone 1k is too small');
like($out, qr/invalid offload_metrics_zone size "1k", it must be at least/,
    'and says the least size');

for my $n (1, 'all') {
    ($rc, $out) = nginx_test(http => "offload_redis cluster://127.0.0.1:1 "
        . "wait_replicas=$n wait_timeout=500ms;\n"
        . sprintf($server, 'location /a { offload_pass a; }'));
    is($rc, 0, "nginx -t: offload_redis cluster://... wait_replicas=$n")
        or diag($out);
}

# an address and all seven of its parameters (before: at most three)
($rc, $out) = nginx_test(http => "offload_redis sentinel://127.0.0.1:1/m "
    . "user=u password=p db=1 wait_replicas=1 wait_timeout=500ms "
    . "sentinel_user=s sentinel_password=q;\n"
    . sprintf($server, 'location /a { offload_pass a; }'));
is($rc, 0, 'nginx -t: offload_redis with all seven parameters') or diag($out);

# offload_status answers from a slot per Redis, 32 of them: a 33rd
# distinct Redis is refused (before, the status answer's arrays of 32
# were written past)
my $many = join "\n    ", map { "location /r$_ { offload_pass a; "
    . "offload_redis 127.0.0.1:6379 db=$_; }" } 0 .. 31;
($rc, $out) = nginx_test(http => sprintf($server, $many));
is($rc, 0, 'nginx -t: 32 distinct Redis') or diag($out);
$many .= "\n    location /r32 { offload_pass a; offload_redis "
    . "127.0.0.1:6379 db=32; }";
($rc, $out) = nginx_test(http => sprintf($server, $many));
isnt($rc, 0, 'nginx -t: a 33rd distinct Redis is refused');
like($out, qr/more than 32 distinct Redis servers in "offload_redis"/,
    'saying why');

my @nginx_bad = (
    [ 'offload_pass outside location', 'offload_pass echo;', 'offload_pass',
        qr/not allowed here/ ],
    [ 'offload_pass without argument', 'location /a { offload_pass; }',
        'offload_pass', qr/number of arguments/ ],
    [ 'offload_pass with two', 'location /a { offload_pass a b; }',
        'offload_pass', qr/number of arguments/ ],
    [ 'offload_timeout abc', 'location /a { offload_pass a; '
        . 'offload_timeout abc; }', 'offload_timeout', qr/invalid|abc/ ],
    [ 'offload_redis bad:addr:x', 'offload_redis bad:addr:x;',
        'offload_redis', qr/bad:addr:x|invalid/ ],
    [ 'offload_redis unresolvable host',
        'offload_redis no-such-host.invalid;', 'offload_redis',
        qr/cannot resolve redis host "no-such-host\.invalid"/ ],
    [ 'offload_redis unknown arg', 'offload_redis 127.0.0.1:6379 foo=bar;',
        'offload_redis', qr/foo|invalid/ ],
    [ 'offload_redis db=x', 'offload_redis 127.0.0.1:6379 db=x;',
        'offload_redis', qr/db|invalid/ ],
    [ 'offload_validate_json maybe', 'offload_validate_json maybe;',
        'offload_validate_json', qr/maybe|on.*off/ ],
    [ 'offload_pass bad literal queue', 'location /a { offload_pass '
        . '"bad name"; }', 'offload_pass', qr/queue name/ ],
    [ 'offload_metrics_zone in a server', 'offload_metrics_zone 1m;',
        'offload_metrics_zone', qr/not allowed here/ ],
    [ 'offload_status with an argument', 'location /s { offload_status x; }',
        'offload_status', qr/number of arguments/ ],
    # (before: '"offload_pass" directive is duplicate' after offload_jobs)
    [ 'offload_status beside offload_pass',
        'location /s { offload_pass a; offload_status; }', 'offload_status',
        qr/"offload_pass" and "offload_status" cannot share a location/ ],
    [ 'offload_pass beside offload_metrics',
        'location /s { offload_metrics; offload_pass a; }', 'offload_pass',
        qr/"offload_metrics" and "offload_pass" cannot share a location/ ],
    [ 'offload_pass beside offload_jobs',
        'location /j { offload_jobs; offload_pass a; }', 'offload_pass',
        qr/"offload_jobs" and "offload_pass" cannot share a location/ ],
    [ 'offload_status beside offload_jobs',
        'location /j { offload_jobs; offload_status; }', 'offload_status',
        qr/"offload_jobs" and "offload_status" cannot share a location/ ],
    [ 'offload_jobs twice', 'location /j { offload_jobs; offload_jobs; }',
        'offload_jobs', qr/duplicate/ ],
    [ 'offload_dashboard twice',
        'location /d { offload_dashboard; offload_dashboard; }',
        'offload_dashboard', qr/duplicate/ ],
    [ 'offload_redis cluster:// without seeds', 'offload_redis cluster://;',
        'offload_redis', qr/invalid cluster address "cluster:\/\/"/ ],
    [ 'offload_redis cluster:// with an empty seed',
        'offload_redis cluster://127.0.0.1:1,;', 'offload_redis',
        qr/invalid cluster address/ ],
    [ 'offload_redis with eight parameters',
        'offload_redis sentinel://127.0.0.1:1/m user=u password=p db=1 '
        . 'wait_replicas=1 wait_timeout=1s sentinel_user=s '
        . 'sentinel_password=q db=2;',
        'offload_redis', qr/too many parameters/ ],
    [ 'offload_result_ttl 0', 'offload_result_ttl 0;', 'offload_result_ttl',
        qr/must be more than 0/ ],
    [ 'offload_timeout 0', 'offload_timeout 0;', 'offload_timeout',
        qr/must be more than 0/ ],
    [ 'offload_redis with db= twice',
        'offload_redis 127.0.0.1:1 db=1 password=p db=2;', 'offload_redis',
        qr/duplicate "db=" in "offload_redis"/ ],
    [ 'offload_redis with password= twice',
        'offload_redis sentinel://127.0.0.1:1/m password=p '
        . 'sentinel_password=q password=r;', 'offload_redis',
        qr/duplicate "password=" in "offload_redis"/ ],
    [ 'offload_redis cluster:// db=1',
        'offload_redis cluster://127.0.0.1:1 db=1;', 'offload_redis',
        qr/"db=" .*a redis cluster has only db 0/ ],
    # the status URL's prefix goes as it is into Location and status_url
    # (before: '$host/x/<id>', a bare id, a quote breaking the JSON)
    [ 'offload_jobs_url with a variable', 'offload_jobs_url $host/x/;',
        'offload_jobs_url', qr/takes no variables/ ],
    [ 'offload_jobs_url empty', "offload_jobs_url '';", 'offload_jobs_url',
        qr/must be a path \("\/\.\.\."\) or an absolute http:\/\/ or https:\/\/ URL/ ],
    [ 'offload_jobs_url relative', 'offload_jobs_url jobs/;',
        'offload_jobs_url', qr/must be a path/ ],
    [ 'offload_jobs_url with a quote', "offload_jobs_url '/j\"obs/';",
        'offload_jobs_url', qr/may not hold spaces, quotes/ ],
);
for my $case (@nginx_bad) {
    my ($name, $directive, $dname, $re) = @$case;
    my ($rc, $out) = nginx_test(http => sprintf($server, $directive));
    my $line = 0;
    for (split /\n/, slurp("$dir/nginx-t.conf")) {
        $line++;
        last if index($_, $directive) >= 0;
    }
    isnt($rc, 0, "nginx -t, $name: non-zero exit");
    like($out, qr/\[emerg\].*"?\Q$dname\E"?/, "nginx -t, $name: names "
        . "the directive") or diag($out);
    like($out, $re, "nginx -t, $name: says what");
    like($out, qr/nginx-t\.conf:$line\b/, "nginx -t, $name: line $line");
}

# ---- cluster://: sync and async jobs, the jobs endpoint, Idempotency-Key
# and the cancel of running jobs are all accepted (t/37-cluster-async.t
# runs them)
my $cluster = 'offload_redis cluster://127.0.0.1:1,127.0.0.1:2 '
    . 'user=u password=p;';
($rc, $out) = nginx_test(http => sprintf($server, $cluster
    . "\n    location /a { offload_pass a; }"
    . "\n    location /b { offload_pass b; offload_idempotency_ttl off; }"
    . "\n    location /c { offload_pass c; offload_mode async;"
    . " offload_idempotency_ttl 1h; }"
    . "\n    location /jobs/ { offload_jobs; offload_cancel_running on; }"
    . "\n    location /s { offload_status; }"
    . "\n    location /m { offload_metrics; }"
    . "\n    location /d { offload_dashboard; }"));
is($rc, 0, 'nginx -t: cluster:// with sync and async jobs, offload_jobs, '
    . 'offload_idempotency_ttl, offload_cancel_running, status') or diag($out);
unlike($out, qr/not supported with cluster/, '... nothing refused');

done_testing();
