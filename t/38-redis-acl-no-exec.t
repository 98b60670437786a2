#!/usr/bin/perl
# nginx's Redis user may not run EXEC (the documented rules without their
# +exec): Redis 7 answers the EXEC of a big body's first slice
# EXECABORT "because of: NOPERM".  That body is answered 503; nginx says
# once that big bodies begin by a script from then on, and they do: the
# next ones are answered whole (before: each 503, for good).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;
use AclRules;

my %rules = readme_acl_rules();
ok(%rules, 'README.md documents the ACL rules') or BAIL_OUT('no rules');
$rules{'offload-nginx'} =
    [ grep { $_ ne '+exec' } @{ $rules{'offload-nginx'} } ];
my %secret = acl_secrets(%rules);

start_redis(user => 'admin', password => 'admin-secret', args => [
    '--user', 'default', 'off',
    '--user', 'admin', 'on', '>admin-secret', '~*', '&*', '+@all',
    map { ('--user', $_, @{ $rules{$_} }) } sort keys %rules ]);
start_sidecar(conf => <<"CONF");
redis_user offload-sidecar;
password $secret{'offload-sidecar'};
queue echo { handler echo; workers 1; }
CONF
ok(start_jobs_nginx(workers => 1,
    redis => "\@REDIS\@ user=offload-nginx password=$secret{'offload-nginx'}",
    server => "client_max_body_size 4m;\n"), 'stack ready');

my $body = '"' . ('b' x (2 << 20)) . '"';
my $r = http('POST', '/jobs/echo', $body);
is($r->{status}, 503, 'a big body: 503, Redis refused its EXEC');
for my $i (1 .. 2) {
    $r = http('POST', '/jobs/echo', $body);
    is($r->{status}, 200, "big body $i after it: 200");
    ok(($r->{content} // '') eq $body, '... whole');
}
my $said = () = slurp(nginx_error_log())
    =~ /refused MULTI or EXEC \(NOPERM[^\n]*\): big bodies begin by a script/g;
is($said, 1, 'nginx says once that big bodies begin by a script');
is(post_json('/jobs/echo', { small => 1 })->{status}, 200,
    'small jobs go on as before');

finish();
