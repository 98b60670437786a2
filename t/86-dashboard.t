#!/usr/bin/perl
# offload_dashboard in a real browser: Debian's headless Chromium, driven
# over the DevTools protocol (t/lib/OffloadBrowser.pm).  The page loads with
# no other asset, the worker table fills, a mouse click on the rss column
# sorts by memory, a worker that starts leaking rises to the top while the
# page watches, the latest crash shows its backtrace, dead letters are
# counted, the charts draw; a screenshot is kept as an artifact
# (build/artifacts/dashboard.png).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use File::Path qw(make_path);
use OffloadTest;
use OffloadBrowser;

plan skip_all => 'chromium is not installed' unless OffloadBrowser::chromium();

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
unlike($page->{content}, qr/<(?:script|link|img)[^>]+(?:src|href)=/i,
    'self-contained: no external script, stylesheet or image');
is(http('GET', '/dash?status')->{json}{redis}, 'ok',
    '?status answers the status document');

post_json('/jobs/echo', { i => $_ }) for 1 .. 20;
is(post_json('/jobs/crash', {})->{status}, 502, 'a worker crashes');
ok(wait_until(sub { (node_doc()->{queues}{crash}{dead} // 0) == 1 },
    scaled(10), 'dead letter'), 'the node counts the dead letter');

my $browser = OffloadBrowser->new;
$browser->navigate('http://127.0.0.1:' . nginx_port() . '/dash');

# the queue column of the worker rows, in order
my $rows_js = 'Array.prototype.map.call(document.querySelectorAll('
    . '"#workers tr td:nth-child(2)"), function (td) {'
    . ' return td.textContent; })';
my $rows;
ok(wait_until(sub { $rows = $browser->eval_js($rows_js); @{ $rows || [] } == 4 },
    scaled(15), 'worker rows'), 'the worker table fills: four workers');
is_deeply($rows, [qw(crash echo echo leak)], 'unsorted: by node, queue');

$browser->click('#workers th[data-sort="memory"]');
ok(wait_until(sub {
    ($browser->eval_js('location.hash') // '') eq '#sort=memory'
        && ($browser->eval_js('document.querySelector('
            . '"#workers th.on").textContent') // '') eq 'rss';
}, scaled(5), 'sorted'), 'a click on rss sorts the table by memory');

is(post_json('/jobs/leak', { mb => 64 })->{status}, 200,
    'a worker leaks 64 MB');
ok(wait_until(sub {
    $rows = $browser->eval_js($rows_js);
    @{ $rows || [] } == 4 && $rows->[0] eq 'leak';
}, scaled(15), 'leak on top'), 'the leaking worker rises to the top')
    or diag(explain($rows));
isnt("@$rows", 'crash echo echo leak', 'the sort reordered the table');

my $crashes = $browser->eval_js('document.getElementById("crashes")'
    . '.textContent');
like($crashes, qr/SIGSEGV/, 'the latest crash is shown');
like($crashes, qr/offload-sidecar\(/, 'with its backtrace');
my $cells = $browser->eval_js('(function () {'
    . ' var head = document.querySelectorAll("#queues th"), i, col;'
    . ' for (i = 0; i < head.length; i++) {'
    . '  if (head[i].textContent === "dead letters") { col = i; } }'
    . ' var rows = document.querySelectorAll("#queues tr");'
    . ' for (i = 1; i < rows.length; i++) {'
    . '  if (rows[i].cells[0].textContent === "crash") {'
    . '   return rows[i].cells[col].textContent; } } })()');
is($cells, '1', 'one dead letter in queue crash');

# The text of a table's first row under the column headed $head.
sub first_row_cell {
    my ($table, $head) = @_;
    return $browser->eval_js('(function () {'
        . " var head = document.querySelectorAll(\"#$table th\"), i;"
        . ' for (i = 0; i < head.length; i++) {'
        . "  if (head[i].textContent === \"$head\") {"
        . "   return document.querySelectorAll(\"#$table tr\")[1].cells[i]"
        . '    .textContent; } } })()');
}

# a node's host clock against Redis': this one's agrees
is(first_row_cell('nodes', 'clock'), 'ok', "the node's clock: ok");
is($browser->eval_js('[clockCell(-60000).text, clockCell(60000).text,'
    . ' clockCell(-60000).cls, clockCell(400).text, clockCell(null).text]'
    . '.join("|")'), '1.0 min ahead|1.0 min behind|warn|ok|-',
    'a clock a minute off is shown so, in warning colour');

# the lines its log target refused: none here
is(first_row_cell('nodes', 'log'), 'ok', "the node's log: ok");
is($browser->eval_js('[logCell(3).text, logCell(3).cls, logCell(0).text,'
    . ' logCell(undefined).text].join("|")'), '3 lost|warn|ok|-',
    'lines a log lost are shown, in warning colour');

# a worker's jobs are all it finished, as the column sorts and top counts
# them (before: its ok ones, 0 for a worker whose jobs all crashed)
my $crash = $browser->eval_js('(function () {'
    . ' var head = document.querySelectorAll("#workers th"), i, c = {};'
    . ' for (i = 0; i < head.length; i++) { c[head[i].textContent] = i; }'
    . ' var rows = document.querySelectorAll("#workers tr");'
    . ' for (i = 1; i < rows.length; i++) {'
    . '  if (rows[i].cells[1].textContent === "crash") { var r = rows[i];'
    . '   return [r.cells[c.jobs].textContent, r.cells[c.ok].textContent,'
    . '           r.cells[c.crashed].textContent].join("|"); } } })()');
like($crash // '', qr/^([1-9]\d*)\|0\|\1$/,
    "the crashing worker's jobs: its crashed ones, none ok ($crash)");

# each worker's open file descriptors, beside its memory
like(first_row_cell('workers', 'fds') // '', qr/^[1-9]\d*$/,
    "a worker's open file descriptors");

# answers flow while the page samples: the charts get points
my $load = fork // die "fork: $!";
if ($load == 0) {
    post_json('/jobs/echo', { i => $_ }) for 1 .. 2000;
    POSIX::_exit(0);
}
ok(wait_until(sub { ($browser->eval_js('points.length') // 0) >= 3 },
    scaled(15), 'chart points'), 'the charts have points');
ok(wait_until(sub {
    my $max = $browser->eval_js('Math.max.apply(null, points.map('
        . 'function (p) { return p.rate; }))');
    ($max // 0) > 0;
}, scaled(15), 'throughput'), 'the throughput chart sees answers');

# the latency chart's percentiles: nearest rank over nginx's fine request
# buckets (the status' request_fine_us), as nginx and the nodes take them
is($browser->eval_js('quantile({ 260000: 99, 1300000: 1 }, 0.99)'), 260,
    'the chart takes p99 of 99 x 260 ms + 1 x 1.3 s as 260 ms');
my $st = http('GET', '/dash?status')->{json};
my (%fine, $n, $below, $p99);
for my $q (values %{ $st->{nginx}{queues} }) {
    $fine{ $_->[0] } += $_->[1] for @{ $q->{request_fine_us} };
}
$n += $_ for values %fine;
for my $v (sort { $a <=> $b } keys %fine) {
    $below += $fine{$v};
    if ($below >= POSIX::ceil(0.99 * $n)) { $p99 = $v / 1000; last; }
}
is($browser->eval_js('quantile(sample(' . json_encode($st) . ').hist, '
    . '0.99)'), $p99, "and the p99 of a status document's buckets ($p99 ms)");

my $dir = build_path('artifacts');
make_path($dir);
my $shot = "$dir/dashboard.png";
unlink $shot;
$browser->screenshot($shot);
waitpid($load, 0);
$browser->quit;
ok(-s $shot, "screenshot saved: $shot");
open my $fh, '<:raw', $shot or die "$shot: $!";
read $fh, my $magic, 8;
is($magic, "\x89PNG\r\n\x1a\n", 'it is a PNG');

done_testing();
