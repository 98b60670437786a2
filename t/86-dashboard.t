#!/usr/bin/perl
# offload_dashboard in a real browser (Debian's headless Chromium): the page
# loads with no other asset, the worker table fills, sorting by memory
# reorders it with a leaking worker on top, the latest crash report shows
# its backtrace, dead letters are counted; a screenshot is kept as an
# artifact (build/artifacts/dashboard.png).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path);
use OffloadTest;

my ($chromium) = grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser);
plan skip_all => 'chromium is not installed' unless $chromium;

start_redis();
start_sidecar(conf => <<'CONF');
fault_handlers on;
queue echo { handler echo; workers 2; }
queue leak { handler leak; workers 1; }
queue crash { handler crash; workers 1; max_attempts 1; }
CONF
ok(start_jobs_nginx(server => 'location = /dash { offload_dashboard; }'),
    'stack ready');

my $page = http('GET', '/dash');
is($page->{status}, 200, 'the page answers 200');
like($page->{headers}{'content-type'}, qr{^text/html}, 'as HTML');
unlike($page->{content}, qr/<(?:script|link)[^>]+(?:src|href)=/i,
    'self-contained: no external script or stylesheet');
is(http('GET', '/dash?status')->{json}{redis}, 'ok',
    '?status answers the status document');

post_json('/jobs/echo', { i => $_ }) for 1 .. 20;
is(post_json('/jobs/leak', { mb => 48 })->{status}, 200, 'a worker leaks');
is(post_json('/jobs/crash', {})->{status}, 502, 'a worker crashes');
ok(wait_until(sub {
    my $q = (node_doc() || {})->{queues} || {};
    ($q->{crash}{dead} // 0) == 1
        && ($q->{leak}{workers}[0]{rss} // 0) > 48 << 20;
}, scaled(10), 'registry caught up'),
    'the node reports the leak and the crash');

my $url = 'http://127.0.0.1:' . nginx_port() . '/dash';
my @browser = ($chromium, qw(--headless --no-sandbox --disable-gpu
    --hide-scrollbars --virtual-time-budget=4000), '--window-size=1280,900');

sub dom {
    my ($hash) = @_;
    my $out = `timeout 120 @browser --dump-dom '$url$hash' 2>/dev/null`;
    return $out;
}

# the queue column of each worker row, in order
sub worker_queues {
    my ($html) = @_;
    my ($table) = $html =~ m{<table id="workers">(.*?)</table>}s or return ();
    return $table =~ m{<tr><td class="l">[^<]*</td><td class="l">([^<]*)</td>}g;
}

my $dom = dom('');
like($dom, qr{<title>offload</title>}, 'page loaded in Chromium');
my @plain = worker_queues($dom);
is_deeply(\@plain, [qw(crash echo echo leak)],
    'worker table filled, by queue without a sort');

$dom = dom('#sort=memory');
my @by_memory = worker_queues($dom);
is(scalar @by_memory, 4, 'sorted table has every worker');
is($by_memory[0], 'leak', 'sorted by memory: the leaking worker on top');
isnt("@by_memory", "@plain", 'sorting reordered the table');
like($dom, qr{<th class=" sort on" data-sort="memory">rss</th>},
    'the memory column is marked as the sort');
like($dom, qr{SIGSEGV}, 'the crash report is shown');
like($dom, qr{<pre>[^<]*offload-sidecar\(}, 'with its backtrace')
    or diag($dom =~ m{<div id="crashes">(.*?)</div>}s);
like($dom, qr{<td\ class="l">crash</td><td\ class="l">ok</td>
    (?:<td>[^<]*</td>){7}<td\ class="warn">1</td>}x,
    'one dead letter in queue crash');

# a screenshot while answers flow, so the charts have a line
my $dir = build_path('artifacts');
make_path($dir);
my $shot = "$dir/dashboard.png";
unlink $shot;
my $load = fork // die "fork: $!";
if ($load == 0) {
    for (1 .. 400) { post_json('/jobs/echo', { i => $_ }) }
    POSIX::_exit(0);
}
system("timeout 120 @browser --screenshot=$shot '$url#sort=memory'"
    . ' >/dev/null 2>&1');
waitpid($load, 0);
ok(-s $shot, "screenshot saved: $shot");
open my $fh, '<', $shot;
read $fh, my $magic, 8;
is($magic, "\x89PNG\r\n\x1a\n", 'it is a PNG');

done_testing();
