#!/usr/bin/perl
# conf/offload.rules.yml, the shipped Prometheus alerting rules: promtool
# accepts them (check rules), they fire and stay quiet as their unit tests
# say (test rules, t/alerts/offload.rules.test.yml), and every metric their
# expressions name is one a live stack exports: offload_metrics scraped
# from nginx with a sidecar node behind it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use OffloadTest;

my $promtool = '/usr/bin/promtool';
plan skip_all => 'promtool (prometheus) is not installed' unless -x $promtool;

my $rules = "$FindBin::Bin/../conf/offload.rules.yml";
my $units = "$FindBin::Bin/alerts/offload.rules.test.yml";

my $out = `$promtool check rules $rules 2>&1`;
is($?, 0, 'promtool check rules accepts conf/offload.rules.yml')
    or diag($out);
like($out, qr/SUCCESS: (\d+) rules found/, 'it found the rules');

$out = `$promtool test rules $units 2>&1`;
is($?, 0, 'promtool test rules: the unit tests pass') or diag($out);

# The metric names in the rules' expressions (the `expr: |` blocks only:
# the annotations may name directives).
sub expr_metrics {
    my ($text) = @_;
    my (%names, $indent);
    for my $line (split /\n/, $text) {
        if (defined $indent) {
            my ($lead) = $line =~ /^(\s*)\S/ or next;
            if (length $lead > $indent) {
                $names{$1} = 1 while $line =~ /\b(offload_[a-z_]+)\b/g;
                next;
            }
            undef $indent;
        }
        if ($line =~ /^(\s*)expr:\s*(.*)$/) {
            my ($lead, $rest) = ($1, $2);
            $names{$1} = 1 while $rest =~ /\b(offload_[a-z_]+)\b/g;
            $indent = length $lead if $rest =~ /^[|>]/;
        }
    }
    return sort keys %names;
}

my @used = expr_metrics(slurp($rules));
ok(scalar(grep { $_ eq 'offload_pool_state' } @used)
    && scalar(grep { $_ eq 'offload_redis_reconnects_total' } @used),
    'the rules name the metrics they watch') or diag("@used");

# A stack: a sidecar node with a queue, nginx with offload_metrics.
start_redis();
start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
ok(start_jobs_nginx(server => 'location = /metrics { offload_metrics; }'),
    'stack ready');
post_json('/jobs/echo', { i => $_ }) for 1 .. 3;

# The names a scrape exports: every family's TYPE line (a histogram's
# samples end in _bucket, _sum and _count, a summary's in _sum and _count)
# and every sample.
my %exported;
ok(wait_until(sub {
    my $r = http('GET', '/metrics');
    return 0 unless $r->{status} == 200
        && $r->{content} =~ /^offload_node_up\{/m;
    for (split /\n/, $r->{content}) {
        if (/^# TYPE (\S+) (\S+)/) {
            my ($name, $type) = ($1, $2);
            $exported{$name} = 1;
            $exported{"${name}_$_"} = 1 for $type eq 'histogram'
                ? qw(bucket sum count) : $type eq 'summary' ? qw(sum count)
                : ();
        } elsif (/^([a-z_]+)[{ ]/) {
            $exported{$1} = 1;
        }
    }
    return 1;
}, scaled(15), 'a scrape with the node\'s series'),
    'offload_metrics answers with the sidecar node\'s series');

my @unknown = grep { !$exported{$_} } @used;
is_deeply(\@unknown, [], 'every metric the rules use is exported: '
    . join(', ', @used));
# the check itself: a name nobody exports, in an expression, is found;
# one in an annotation is not taken for a metric
my @probe = expr_metrics(<<'YML');
      - alert: Probe
        expr: |
          rate(offload_no_such_metric_total[5m]) > 0
        annotations:
          summary: "see offload_pass"
YML
is_deeply([ grep { !$exported{$_} } @probe ],
    ['offload_no_such_metric_total'],
    'the check finds an unknown name in an expression, only there');

finish();
