package HalfWritten;
# HalfWritten -- the stack of the tests where a big body's slice is left
# half written when its request goes (t/49-half-written*): Redis (with
# redis_args), a BlackholeProxy between it and nginx that reads nothing
# more from nginx once it has passed on the queue "parked"'s EXISTS, until
# released; an echo worker; a one-worker nginx through the proxy with
# client_max_body_size 16m, /brief/<queue> (offload_timeout 400ms) and
# the server lines given; and the queue "parked", which nobody reads.
#
#   my $proxy = half_written_stack(redis_args => [...], server => '...');

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use BlackholeProxy;
use OffloadTest;

our @EXPORT = qw(half_written_stack);

sub half_written_stack {
    my (%o) = @_;
    start_redis(args => $o{redis_args} // []);
    my $proxy = BlackholeProxy->start(redis_port(), hold_on =>
        qr/\r\nEXISTS\r\n\$\d+\r\noffload:\{parked\}:jobs\r\n/);
    start_sidecar(conf => "queue echo { handler echo; workers 1; }\n");
    start_jobs_nginx(workers => 1, redis => '127.0.0.1:' . $proxy->port,
        server => "    client_max_body_size 16m;\n"
            . '    location ~ ^/brief/([^/]+)$ { offload_pass $1; '
            . "offload_timeout 400ms; }\n" . ($o{server} // ''))
        or do {
            kill 'KILL', $proxy->pid;
            give_up('stack did not start');
        };
    is(redis_cmd('XGROUP', 'CREATE', 'offload:{parked}:jobs', 'workers',
        '$', 'MKSTREAM'), 'OK', 'a queue nobody reads');
    return $proxy;
}

1;
