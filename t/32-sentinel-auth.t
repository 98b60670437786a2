#!/usr/bin/perl
# Sentinels with a password of their own (requirepass, apart from the
# master's, which has none here): nginx (offload_redis sentinel://...
# sentinel_password=) and the sidecar (sentinel_password) AUTH to them
# before asking for the master and before subscribing to +switch-master.
# Jobs flow through both, and both follow a SENTINEL FAILOVER (nginx's
# workers hear +switch-master on their authenticated subscription).  A
# wrong sentinel password, or none, gives a clear log line and 503
# redis_unavailable at once, not a hang, on nginx; a clear log line on a
# sidecar, which keeps running and stops on SIGTERM.  A sidecar reload may
# not change the sentinels' login.  Neither password appears in any log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use OffloadTest;
use SentinelTopology;

my $SECRET = 'Sentinel-S3cret';
my $WRONG = 'Not-The-S3cret';

# the directive's checks, before anything runs
for my $case (
    [ 'sentinel://127.0.0.1:1/m sentinel_user=u',
      qr/"sentinel_user=" needs "sentinel_password="/ ],
    [ '127.0.0.1:1 sentinel_password=x',
      qr/"sentinel_password=" needs a sentinel:\/\/ address/ ],
    [ 'sentinel://127.0.0.1:1/m sentinel_password=',
      qr/invalid parameter "sentinel_password="/ ],
    [ 'sentinel://127.0.0.1:1/m sentinel_user= sentinel_password=p',
      qr/invalid parameter "sentinel_user="/ ],
    [ '127.0.0.1:1 password=', qr/invalid parameter "password="/ ],
    [ '127.0.0.1:1 user= password=p', qr/invalid parameter "user="/ ],
) {
    my ($rc, $out) = nginx_test(http => "server { listen 127.0.0.1:1; "
        . "offload_redis $case->[0]; location / { offload_pass q; } }");
    ok($rc != 0 && $out =~ $case->[1], "offload_redis $case->[0]: refused")
        or diag($out);
}
my ($rc, $out) = nginx_test(http => 'server { listen 127.0.0.1:1; '
    . 'offload_redis sentinel://127.0.0.1:1/m sentinel_user=u '
    . 'sentinel_password=p password=q; location / { offload_pass q; } }');
is($rc, 0, 'sentinel_user= and sentinel_password= beside password= are '
    . 'taken') or diag($out);

# the sidecar's checks
my $dir = tmpdir();
for my $case (
    [ "redis sentinel://127.0.0.1:1/m;\nsentinel_user u;\n",
      qr/check\.conf:2: "sentinel_user" needs "sentinel_password"/ ],
    # at the line of sentinel_password (before: a line past the end)
    [ "redis 127.0.0.1:1;\nsentinel_password p;\n",
      qr/check\.conf:2: "sentinel_password" needs a "redis sentinel:/ ],
    [ "redis 127.0.0.1:1;\nredis_user u;\n",
      qr/check\.conf:2: "redis_user" needs "password"/ ],
) {
    spew("$dir/check.conf", $case->[0]
        . "node_name n;\nqueue echo { handler echo; }\n");
    my $o = `${\ build_path('offload-sidecar')} -t -c $dir/check.conf 2>&1`;
    ok($? != 0 && $o =~ $case->[1], 'sidecar: ' . ($case->[0] =~ tr/\n/ /r)
        . 'refused') or diag($o);
}

my $topo = start_sentinel_topology(name => 'authd', password => $SECRET);
my $s1 = ($topo->sentinel_ports)[0];
like(eval { redis_cmd_at($s1, 'SENTINEL', 'get-master-addr-by-name',
    'authd')->{error} } // '', qr/NOAUTH/,
    'the sentinels want a password');

redis_use($topo->master_port);
my $sentinels = 'sentinel://' . $topo->url;
start_sidecar(redis => $sentinels, conf => "sentinel_user default;\n"
    . "sentinel_password $SECRET;\n"
    . "redis_timeout 1s;\nqueue echo { handler echo; workers 2; }\n");
ok(1, 'the sidecar found the master through the sentinels with AUTH '
    . '(as their ACL user "default")');

ok(start_jobs_nginx(redis => "$sentinels sentinel_password=$SECRET",
    server => <<"SERVER"), 'nginx found the master with AUTH');
    location ~ ^/wrong/([^/]+)\$ {
        offload_redis $sentinels sentinel_password=$WRONG;
        offload_pass \$1;
    }
    location ~ ^/none/([^/]+)\$ {
        offload_redis $sentinels;
        offload_pass \$1;
    }
SERVER

my $r = post_json('/jobs/echo', { hello => 'auth' });
is($r->{status}, 200, 'a job through nginx and the sidecar');
is_deeply($r->{json}, { hello => 'auth' }, '... with its result');

# ---- a wrong password, none: 503 at once, a clear log line ---------------

for my $case (
    [ '/wrong', qr/sentinel\ 127\.0\.0\.1:\d+\ refused\ AUTH\ with
                  \ sentinel_user=\/sentinel_password=:\ WRONGPASS/x ],
    [ '/none', qr/names no usable master for "authd": NOAUTH/ ],
) {
    my ($path, $log) = @$case;
    my $t0 = time;
    $r = post_json("$path/echo", {}, scaled(10));
    my $took = time - $t0;
    is($r->{status}, 503, "$path: 503");
    is(eval { $r->{json}{error}{code} }, 'redis_unavailable',
        "$path: redis_unavailable") or diag($r->{content});
    ok($took < 3, sprintf "$path: answered in %.2f s, no hang", $took);
    ok(wait_until(sub { slurp(nginx_error_log()) =~ $log }, scaled(5),
        "$path log line"), "$path: the error log says why");
}
is(post_json('/jobs/echo', { n => 1 })->{status}, 200,
    'the right password still works beside them');

# a sidecar with the wrong password: says so, keeps trying, stops cleanly
spew("$dir/wrong.conf", "redis $sentinels;\nsentinel_password $WRONG;\n"
    . "node_name wrong$$;\nlog $dir/wrong.log info;\nredis_timeout 1s;\n"
    . "queue echo { handler echo; }\n");
spawn('sidecar-wrong', "$dir/wrong.stderr", {}, build_path('offload-sidecar'),
    '-c', "$dir/wrong.conf");
ok(wait_until(sub { slurp("$dir/wrong.log") =~ /sentinel\ 127\.0\.0\.1:\d+
    \ refused\ AUTH\ with\ sentinel_user\/sentinel_password:\ WRONGPASS/x },
    scaled(10), 'wrong sidecar log'), 'sidecar, wrong password: the log '
    . 'says which sentinel refused AUTH');
ok(alive('sidecar-wrong'), '... and it keeps running');
my $t0 = time;
my $status = stop_proc('sidecar-wrong', scaled(10));
ok(defined $status && $status == 0 && time - $t0 < scaled(5),
    sprintf('... and exits 0 on SIGTERM in %.2f s', time - $t0));
unlike(slurp("$dir/wrong.stderr"), qr/Sanitizer|runtime error/,
    '... with no sanitizer report');

# a reload may not change the sentinels' login: refused, the old one stays
my $conf = sidecar_conf_file();
my $text = slurp($conf);
(my $changed = $text)
    =~ s/sentinel_password \Q$SECRET\E;/sentinel_password $WRONG;/
    or die 'no sentinel_password line';
spew($conf, $changed);
kill 'HUP', sidecar_pid();
ok(wait_until(sub { slurp("$dir/sidecar.log")
    =~ /reload refused.*sentinel_user\/sentinel_password cannot/ },
    scaled(10), 'reload refused'), 'a sidecar reload changing '
    . 'sentinel_password is refused');
spew($conf, $text);

# ---- SENTINEL FAILOVER: both follow -------------------------------------

$t0 = time;
my ($old, $new) = $topo->failover(scaled(20));
ok($new, "SENTINEL FAILOVER: master $old -> " . ($new // 'none'));
my $elected = time - $t0;
ok(wait_until(sub {
    redis_use($new);
    my $r = post_json('/jobs/echo', { after => 'failover' }, 3);
    $r->{status} == 200 && ($r->{json}{after} // '') eq 'failover'
        && (node_doc() // {})->{pid};
}, scaled(15), 'jobs flow on the new master'), 'jobs flow again through '
    . 'nginx and the sidecar on the new master');
diag(sprintf 'SENTINEL FAILOVER with sentinel AUTH: elected after %.2f s, '
    . 'jobs answered again after %.2f s', $elected, time - $t0);
like(slurp(nginx_error_log()), qr/failover: authd 127\.0\.0\.1 $old/,
    'nginx heard +switch-master on its authenticated subscription');
like(slurp("$dir/sidecar.log"), qr/moved to 127\.0\.0\.1:$new|READONLY/,
    'the sidecar saw its master go');

# offloadctl logs in to the sentinels as the configuration says
my $ctl = build_path('offloadctl');
$out = `$ctl -c ${\ sidecar_conf_file()} queues 2>&1`;
is($? >> 8, 0, 'offloadctl -c <conf with sentinel_password>: exit 0')
    or diag($out);
like($out, qr/^echo\s/m, '... it reads the master the sentinels name');
$out = `$ctl -c $dir/wrong.conf queues 2>&1`;
ok($? >> 8 != 0 && $out =~ /refused AUTH with sentinel_user\/sentinel_password/,
    'offloadctl with a wrong sentinel_password: says so, fails') or diag($out);
ok(index($out, $WRONG) < 0, '... without the password');

my $logs = join '', map { slurp($_) } nginx_error_log(), "$dir/sidecar.log",
    "$dir/sidecar.stderr", "$dir/wrong.log", "$dir/wrong.stderr";
ok(index($logs, $SECRET) < 0 && index($logs, $WRONG) < 0,
    'no sentinel password in any log');

finish();
