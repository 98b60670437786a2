#!/usr/bin/perl
# Redis with a password, jobs in a database other than 0: the module
# (offload_redis ... password= db=) and the sidecar (password, db) both
# AUTH and SELECT, also after Redis restarts.  The module is given a host
# name, which it resolves while reading its configuration.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

start_redis(password => 's3cret');
redis_select(3);
start_sidecar(conf => <<'CONF');
password s3cret;
db 3;
queue echo { handler echo; workers 1; }
CONF
ok(node_doc(), 'the registry entry is in db 3');
ok(start_jobs_nginx(
    redis => 'localhost:@REDIS_PORT@ password=s3cret db=3'), 'stack ready');

my $r = post_json('/jobs/echo', { secret => 'kept' });
is($r->{status}, 200, 'job with AUTH + SELECT 3');
is_deeply($r->{json}, { secret => 'kept' }, 'echoed');
my $id = $r->{headers}{'x-offload-job-id'};
ok(defined redis_cmd('GET', "offload:{echo}:result:$id"),
    'its result is stored in db 3');
redis_select(0);
is(redis_cmd('EXISTS', 'offload:{echo}:jobs'), 0, 'nothing in db 0');
redis_select(3);

my ($ctl, $conf) = (build_path('offloadctl'), sidecar_conf_file());
my $out = `$ctl -c $conf status 2>&1`;
is($? >> 8, 0, 'offloadctl -c with password and db: exit 0') or diag($out);
like($out, qr/\Q${\ node_name()}\E/, 'offloadctl status shows the node');

restart_redis();
ok(wait_until(sub {
    my $ok = 0;
    for (1 .. 6) { $ok++ if post_json('/jobs/echo', {})->{status} == 200 }
    $ok == 6;
}, 30, 'jobs work after a restart'), 'AUTH + SELECT again after a restart');

finish();
