package OffloadTest;

# OffloadTest -- the integration test harness: real redis-server, real stock
# nginx with the module (master + 2 workers) and the real sidecar, each on
# loopback ports picked at run time, in one temp dir per test file.
#
# A test file builds its stack with start_redis / start_sidecar / start_nginx,
# talks to it with http / redis_cmd / concurrent_posts, synchronises with
# wait_until (a deadline, never a fixed sleep) and ends with finish(), which
# stops everything and fails the file if a log shows a crash, an alert or a
# sanitizer report.  Perl core modules only.

use strict;
use warnings;

use Exporter 'import';
use Cwd qw(abs_path);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    build_path sanitize scaled tmpdir free_port wait_until slurp spew
    spawn alive stop_proc child_pids tls_cert
    start_redis stop_redis restart_redis redis_port redis_pid redis_cmd
    redis_cmds redis_select redis_cmd_at redis_use proc_pid wait_replicated
    redis_password
    start_sidecar stop_sidecar sidecar_pid sidecar_conf_file node_name
    node_doc worker_pids stream_entries events record_key stored_result
    wait_streams
    nginx_conf write_nginx_conf start_nginx stop_nginx nginx_port
    nginx_pid nginx_worker_pids nginx_error_log wait_nginx_ready nginx_test
    nginx_env
    start_server_nginx start_jobs_nginx start_async_nginx
    http post_json send_post read_answer parked_list_answer pipelined
    keepalive_get next_answer evalsha_calls nginx_writing
    async_job_status running_sleep_job read_raw parse_response
    pending_jobs
    concurrent_posts jobs_in_turn
    json_encode json_decode
    stop_all finish give_up
);

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

# JSON::PP decodes about a megabyte a second: the big-body tests' echoes
# (48 MB) took most of a minute to decode.  A document over 1 MB goes to
# Cpanel::JSON::XS (Debian's libcpanel-json-xs-perl, which lintian of the
# test packages needs), which gives the same data and the same booleans;
# what it refuses (duplicate keys) is asked of JSON::PP again.
my $BIG_JSON = 2**20;
my $XS_JSON = eval {
    require Cpanel::JSON::XS;
    Cpanel::JSON::XS->new->utf8->canonical->allow_nonref;
};

sub json_encode { $JSON->encode($_[0]) }
sub json_decode {
    my ($text) = @_;
    my $v;
    $v = eval { $XS_JSON->decode($text) }
        if $XS_JSON && defined $text && length $text > $BIG_JSON;
    $v //= eval { $JSON->decode($text) };
    return $v;
}

my $REPO = abs_path(dirname(__FILE__) . '/../..');

sub build_path {
    my ($name) = @_;
    my $dir = $ENV{OFFLOAD_BUILD} || "$REPO/build";
    return defined $name ? "$dir/$name" : $dir;
}

sub sanitize { ($ENV{OFFLOAD_SANITIZE} // '') eq '1' }

# Timeouts scale up under the sanitizers, which slow everything down.
sub scaled { $_[0] * (sanitize() ? 3 : 1) }

my %S = (procs => {}, owner => $$);     # the stack of this test file
my $DIR;

sub tmpdir {
    return $DIR if $DIR;
    # OFFLOAD_KEEP=1 keeps the logs of a failing run for a look
    $DIR = tempdir('offload-t-XXXXXX', TMPDIR => 1,
        CLEANUP => !$ENV{OFFLOAD_KEEP});
    # started as root, nginx's workers run as nobody and must reach it
    chmod 0755, $DIR or die "chmod $DIR: $!";
    return $DIR;
}

# A self-signed certificate for 127.0.0.1, key.pem and cert.pem in the
# test's directory (an nginx ssl listener's ssl_certificate
# @DIR@/cert.pem and ssl_certificate_key @DIR@/key.pem).
sub tls_cert {
    my $dir = tmpdir();
    system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        . " -nodes -days 1 -subj /CN=127.0.0.1 -keyout $dir/key.pem"
        . " -out $dir/cert.pem >$dir/openssl.log 2>&1") == 0
        or give_up('openssl req: ' . slurp("$dir/openssl.log"));
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "write $file: $!";
    print $fh $text;
    close $fh or die "close $file: $!";
}

sub free_port {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "free_port: $!";
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

# Polls $cond every 25 ms until it returns true or $timeout seconds pass.
# Returns the condition's value, or 0 (with a diag naming $msg) on timeout.
sub wait_until {
    my ($cond, $timeout, $msg) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $v = eval { $cond->() };
        return $v if $v;
        if (time >= $deadline) {
            diag("timed out after ${\($timeout // 10)}s waiting for: "
                 . ($msg // 'condition') . ($@ ? " (last error: $@)" : ''));
            return 0;
        }
        sleep 0.025;
    }
}

# Fails this test file (not the whole run, unlike BAIL_OUT) when the stack
# cannot be set up: the other files still run and report.
sub give_up {
    my ($why) = @_;
    fail('stack set-up');
    diag($why);
    done_testing();
    exit 1;
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}


# ---- processes ------------------------------------------------------------

# Forks and execs @cmd with stdout+stderr appended to $log.  The process
# gets SIGTERM when the test dies, however it dies (a timeout's SIGKILL,
# an interrupted make test): no Redis, nginx or sidecar is left behind.
# Redis, its data thrown away, gets SIGKILL: a test may die while it is
# stopped (SIGSTOP), deaf to SIGTERM.  (A sidecar or a reader a test
# stopped and then died stays stopped: they keep SIGTERM, to end cleanly.)
sub spawn {
    my ($name, $log, $env, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        $ENV{$_} = $env->{$_} for keys %$env;
        my $sig = (grep { m{(?:^|/)redis-(?:server|sentinel)$} } @cmd)
            ? 'KILL' : 'TERM';
        @cmd = ('/usr/bin/setpriv', '--pdeathsig', $sig, '--', @cmd)
            if -x '/usr/bin/setpriv';
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    $S{procs}{$name} = { pid => $pid, log => $log, cmd => \@cmd };
    return $pid;
}

sub proc_pid { $S{procs}{$_[0]} && $S{procs}{$_[0]}{pid} }

sub alive {
    my ($name) = @_;
    my $p = $S{procs}{$name} or return 0;
    return 0 if defined $p->{status};
    my $r = waitpid($p->{pid}, WNOHANG);
    if ($r == $p->{pid}) {
        $p->{status} = $?;
        return 0;
    }
    return 1;
}

# SIGTERM, wait up to $timeout s, then SIGKILL.  Returns the wait status.
sub stop_proc {
    my ($name, $timeout, $sig) = @_;
    my $p = $S{procs}{$name} or return undef;
    if (alive($name)) {
        my @children = child_pids($p->{pid});
        kill $sig // 'TERM', $p->{pid};
        kill 'CONT', $p->{pid};     # a stopped process sees no TERM
        my $deadline = time + ($timeout // 15);
        while (alive($name) && time < $deadline) {
            sleep 0.02;
        }
        if (alive($name)) {
            diag("$name (pid $p->{pid}) did not exit on SIG"
                 . ($sig // 'TERM') . ", killing it");
            kill 'KILL', $p->{pid}, @children;
            waitpid($p->{pid}, 0);
            $p->{status} = $?;
            $p->{killed} = 1;
        }
    }
    delete $S{procs}{$name};
    return $p->{status};
}


# ---- redis ----------------------------------------------------------------

sub redis_port { $S{redis_port} }
sub redis_pid { $S{procs}{redis} && $S{procs}{redis}{pid} }

# start_redis(password => 'pw', bind => ['127.0.0.1', '::1'],
#             args => [more redis-server arguments], dir => ..., port => ...,
#             wrapper => [valgrind ...], timeout => seconds to answer PING)
# With user => 'name', the test's own commands AUTH as that ACL user (which
# args must define) instead of setting requirepass.
sub start_redis {
    my (%o) = @_;
    my $dir = $o{dir} // tmpdir();
    my $port = $o{port} // $S{redis_port} // free_port();
    $S{redis_port} = $port;
    $S{redis_password} = $o{password} if exists $o{password};
    $S{redis_user} = $o{user} if exists $o{user};
    my @auth = defined $S{redis_password} && !defined $S{redis_user}
        ? ('--requirepass', $S{redis_password}) : ();
    spawn('redis', "$dir/redis.log", {}, @{ $o{wrapper} // [] },
        'redis-server', '--port', $port,
        '--bind', @{ $o{bind} // ['127.0.0.1'] }, '--save', '',
        '--appendonly', 'no',
        '--dir', $dir, '--daemonize', 'no', @auth, @{ $o{args} // [] });
    wait_until(sub {
        die "redis-server exited\n" unless alive('redis');
        my $r = redis_cmd('PING');
        defined $r && !ref $r && $r eq 'PONG';
    }, $o{timeout} // 10, "redis-server on port $port answers PING")
        or give_up("redis-server did not start: " . slurp("$dir/redis.log"));
    return $port;
}

sub stop_redis { stop_proc('redis', 10) }

# Stops Redis and starts an empty one on the same port.
sub restart_redis {
    stop_redis();
    return start_redis(@_);
}


# Later redis_cmd calls (and @REDIS@) go to the Redis on $port, e.g. the
# master a sentinel topology names.
sub redis_use { $S{redis_port} = $_[0] }

# redis_cmd to the Redis (or sentinel) on 127.0.0.1:$port, without the
# password and database set for the test's own Redis.
sub redis_cmd_at {
    my ($port, @args) = @_;
    local $S{redis_port} = $port;
    local $S{redis_password};
    local $S{redis_user};
    local $S{redis_db};
    return redis_cmd(@args);
}

# Waits until $n replicas of the Redis on $port have acknowledged every
# write it had made when called (their offsets in its INFO replication);
# true then, 0 after $timeout s.  Not WAIT: WAIT counts the replicas that
# have the asking connection's own last write, and a connection that wrote
# nothing has none, so it answers at once however far behind they are
# (after a full sync, Redis 7.0 may hold a replica's stream for up to a
# second, until the replica's next REPLCONF ACK).
sub wait_replicated {
    my ($port, $n, $timeout) = @_;
    my $info = redis_cmd_at($port, 'INFO', 'replication') // '';
    my ($target) = $info =~ /^master_repl_offset:(\d+)/m;
    die "no master_repl_offset on $port\n" unless defined $target;
    return wait_until(sub {
        my $now = redis_cmd_at($port, 'INFO', 'replication') // '';
        (grep { $_ >= $target }
            $now =~ /^slave\d+:.*,state=online,offset=(\d+)/mg) >= $n;
    }, $timeout // scaled(10), "$n replica(s) of $port at offset $target");
}

# Later redis_cmd calls AUTH with $password (undef: none), one the test's
# Redis was told to require (CONFIG SET requirepass).
sub redis_password { $S{redis_password} = $_[0] }

# Later redis_cmd calls use database $db (SELECT).
sub redis_select { $S{redis_db} = $_[0] }

# A tiny RESP client, one connection per call (with AUTH and SELECT first
# when a password or database is set).  Replies: a string for simple and
# bulk strings, a number for integers, undef for nil, an array ref for
# arrays, and { error => "..." } for errors.  Dies when Redis is unreachable.
sub redis_cmd {
    my (@args) = @_;
    return (redis_cmds(\@args))[-1];
}

# Several commands on one connection (a MULTI ... EXEC), in one write;
# returns their replies.
sub redis_cmds {
    my (@cmds) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $S{redis_port}, Proto => 'tcp', Timeout => 2)
        or die "redis connect: $!\n";
    my $setup = 0;
    if ($S{redis_db}) {
        unshift @cmds, [ 'SELECT', $S{redis_db} ];
        $setup++;
    }
    if (defined $S{redis_password}) {
        unshift @cmds, [ 'AUTH', grep { defined } $S{redis_user},
                         $S{redis_password} ];
        $setup++;
    }
    my $req = '';
    for my $cmd (@cmds) {
        $req .= '*' . @$cmd . "\r\n";
        $req .= '$' . length($_) . "\r\n$_\r\n" for @$cmd;
    }
    syswrite_all($s, $req);
    my $buf = '';
    my @replies = map { resp_read($s, \$buf) } @cmds;
    close $s;
    return @replies[$setup .. $#replies];
}

sub syswrite_all {
    my ($s, $data) = @_;
    while (length $data) {
        my $n = syswrite($s, $data);
        die "write: $!\n" unless defined $n;
        substr($data, 0, $n) = '';
    }
}

sub resp_fill {
    my ($s, $buf, $need) = @_;
    while (length($$buf) < $need) {
        my $n = sysread($s, $$buf, 65536, length $$buf);
        die "redis read: " . (defined $n ? 'eof' : $!) . "\n" unless $n;
    }
}

sub resp_line {
    my ($s, $buf) = @_;
    my $i;
    while (($i = index($$buf, "\r\n")) < 0) {
        resp_fill($s, $buf, length($$buf) + 1);
    }
    my $line = substr($$buf, 0, $i);
    substr($$buf, 0, $i + 2) = '';
    return $line;
}

sub resp_read {
    my ($s, $buf) = @_;
    my $line = resp_line($s, $buf);
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+';
    return 0 + $v if $t eq ':';
    return { error => $v } if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        resp_fill($s, $buf, $v + 2);
        my $data = substr($$buf, 0, $v);
        substr($$buf, 0, $v + 2) = '';
        return $data;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { resp_read($s, $buf) } 1 .. $v ];
    }
    die "bad RESP line: $line\n";
}


# ---- sidecar --------------------------------------------------------------

sub node_name { $S{node} }

# A job's record key: offload:job:{<tag>}:<id>, the tag the id's
# characters 12..16, in its queue's slot (proto/offload_proto.h).
sub record_key { my ($id) = @_; $id //= '';
    'offload:job:{' . substr($id, 11, 5) . "}:$id" }
sub sidecar_pid { $S{procs}{sidecar} && $S{procs}{sidecar}{pid} }
sub sidecar_conf_file { $S{sidecar_conf} }

# The node's registry document, or undef.
sub node_doc {
    my $v = eval { redis_cmd('GET', "offload:{ctl}:node:$S{node}") };
    return undef unless defined $v && !ref $v;
    return json_decode($v);
}

# { queue => [pid of slot 0, pid of slot 1, ...] } from the registry.
sub worker_pids {
    my $doc = node_doc() or return undef;
    my %pids;
    for my $q (keys %{ $doc->{queues} || {} }) {
        for my $w (@{ $doc->{queues}{$q}{workers} || [] }) {
            $pids{$q}[ $w->{slot} ] = $w->{pid};
        }
    }
    return \%pids;
}

# A job's result as the sidecar stored it (offload:{<queue>}:result:<id>,
# "OR1 <id> <status> ...\n<body>"), waited for at most $timeout s (default
# scaled(10)); '' if none came.
sub stored_result {
    my ($queue, $id, $timeout) = @_;
    my $res;
    wait_until(sub {
        $res = redis_cmd('GET', "offload:{$queue}:result:$id");
        defined $res && !ref $res;
    }, $timeout // scaled(10), "result of $id");
    return $res // '';
}

# The entries of a stream, oldest first, as hashes of their fields.
sub stream_entries {
    my ($key) = @_;
    my $r = redis_cmd('XRANGE', $key, '-', '+');
    return [ map { { @{ $_->[1] } } } @{ ref $r eq 'ARRAY' ? $r : [] } ];
}

# The sidecar events (offload:{ctl}:events) of a type, their reports decoded.
sub events {
    my ($type) = @_;
    return [ map { { %$_, report => json_decode($_->{report} // 'null') } }
             grep { $_->{type} eq $type }
             @{ stream_entries('offload:{ctl}:events') } ];
}

# Queue => worker count, read from the sidecar conf text.
sub conf_queues {
    my ($text) = @_;
    my %q;
    while ($text =~ /\bqueue\s+(\S+)\s*\{([^}]*)\}/g) {
        my ($name, $body) = ($1, $2);
        $q{$name} = $body =~ /\bworkers\s+(\d+)\s*;/ ? $1 : 1;
    }
    return \%q;
}

# start_sidecar(conf => "queue echo { handler echo; workers 2; }",
#               wrapper => [valgrind ...], level => 'info',
#               redis => '[::1]:6380', log => 'stderr debug',
#               stderr => $fifo)
# Prepends redis (default 127.0.0.1:<redis port>), node_name and log lines
# (log: the directive's arguments, default <tmpdir>/sidecar.log at level)
# to the queue text, starts the sidecar (its stdout and stderr appended to
# stderr, default <tmpdir>/sidecar.stderr) and waits until its registry
# entry lists every worker.
sub start_sidecar {
    my (%o) = @_;
    my $dir = tmpdir();
    $S{node} //= "t$$";
    my $conf = "$dir/sidecar.conf";
    my $level = $o{level} // 'info';
    spew($conf, "redis " . ($o{redis} // "127.0.0.1:$S{redis_port}") . ";\n"
        . "node_name $S{node};\n"
        . "log " . ($o{log} // "$dir/sidecar.log $level") . ";\n"
        . "heartbeat " . ($o{heartbeat} // '200ms') . ";\n"
        . $o{conf});
    $S{sidecar_conf} = $conf;
    my %env;
    $env{ASAN_OPTIONS} = 'detect_leaks=1:abort_on_error=0' if sanitize();
    spawn('sidecar', $o{stderr} // "$dir/sidecar.stderr", \%env,
        @{ $o{wrapper} // [] }, build_path('offload-sidecar'), '-c', $conf);
    # want: the queues (=> workers) the node document on the test's Redis
    # must list, by default every queue of conf
    my $want = $o{want} // conf_queues($o{conf});
    wait_until(sub {
        die "offload-sidecar exited\n" unless alive('sidecar');
        my $doc = node_doc() or return 0;
        return 0 unless ($doc->{pid} // 0) == sidecar_pid();
        my $pids = worker_pids() or return 0;
        for my $q (keys %$want) {
            my $got = grep { $_ } @{ $pids->{$q} || [] };
            return 0 if $got < $want->{$q};
        }
        1;
    }, $o{timeout} // scaled(15), "sidecar node $S{node} registered")
        or give_up("sidecar did not register: "
            . slurp("$dir/sidecar.stderr") . slurp("$dir/sidecar.log"));
    return sidecar_pid();
}

# Waits until each queue's stream exists: one of its workers started, as
# the node's next heartbeat then makes it (until then nginx answers its
# jobs 404, as it should; start_sidecar waits for the workers only).
sub wait_streams {
    my (@queues) = @_;
    return wait_until(sub {
        !grep { !redis_cmd('EXISTS', "offload:{$_}:jobs") } @queues },
        scaled(15), "the streams of @queues");
}

# Stops the sidecar (SIGTERM), returns its wait status.
sub stop_sidecar {
    my ($timeout) = @_;
    return stop_proc('sidecar', $timeout // scaled(20));
}


# ---- nginx ----------------------------------------------------------------

sub nginx_port { $S{nginx_port} }
sub nginx_pid { $S{procs}{nginx} && $S{procs}{nginx}{pid} }
sub nginx_error_log { tmpdir() . '/error.log' }

# The whole nginx.conf around an http block's text.  @PORT@, @REDIS@
# (127.0.0.1:<redis port>), @REDIS_PORT@ and @DIR@ (the temp dir) are
# substituted.
sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir} // tmpdir();
    my $module = "$dir/ngx_http_offload_module.so";
    my $load = ($o{module} // 1) ? "load_module $module;" : '';
    if ($load && !-e $module) {
        # nothing on the repo path has to be reachable by nobody then
        copy(build_path('ngx_http_offload_module.so'), $module)
            or die "copy module: $!";
        chmod 0644, $module;
    }
    my $http = $o{http} // '';
    my $main = $o{main} // '';
    my $port = $o{port} // $S{nginx_port} // '';
    my $redis = '127.0.0.1:' . ($S{redis_port} // 6379);
    for ($http, $main) {
        s/\@PORT\@/$port/g;
        s/\@REDIS\@/$redis/g;
        s/\@REDIS_PORT\@/$S{redis_port} \/\/ 6379/ge;
        s/\@DIR\@/$dir/g;
    }
    my $env = sanitize() ? "env ASAN_OPTIONS;\nenv UBSAN_OPTIONS;\n" : '';
    # valgrind keeps descriptors of its own and refuses a higher limit
    my $rlimit = $o{wrapper} ? ''
        : 'worker_rlimit_nofile ' . ($o{nofile} // 16384) . ";\n";
    my $connections = $o{connections} // 4096;
    my $temp = join '', map { "    ${_}_temp_path $dir/${_}_temp;\n" }
        qw(client_body proxy fastcgi uwsgi scgi);
    return <<"CONF";
$load
daemon off;
master_process on;
worker_processes $o{workers};
${rlimit}pid $dir/nginx.pid;
error_log $dir/error.log $o{level};
$env$main
events {
    worker_connections $connections;
}

http {
    access_log off;
$temp
$http
}
CONF
}

sub write_nginx_conf {
    my (%o) = @_;
    $o{workers} //= 2;
    $o{level} //= 'notice';
    my $file = $o{file} // tmpdir() . '/nginx.conf';
    spew($file, nginx_conf(%o));
    return $file;
}

sub nginx_env {
    return {} unless sanitize();
    my @libs = map { my $l = `gcc -print-file-name=$_`; chomp $l; $l }
        qw(libasan.so libubsan.so);
    return {
        LD_PRELOAD    => join(':', @libs),
        ASAN_OPTIONS  => 'detect_leaks=0:abort_on_error=0',
        UBSAN_OPTIONS => 'print_stacktrace=1',
    };
}

# start_nginx(http => "server { listen 127.0.0.1:@PORT@; ... }",
#             workers => 2, wrapper => [valgrind ...], timeout => seconds,
#             connections => worker_connections (default 4096),
#             nofile => worker_rlimit_nofile (default 16384))
sub start_nginx {
    my (%o) = @_;
    my $dir = tmpdir();
    $S{nginx_port} //= free_port();
    my $conf = write_nginx_conf(%o);
    spawn('nginx', "$dir/nginx.stderr", nginx_env(), @{ $o{wrapper} // [] },
        '/usr/sbin/nginx', '-p', "$dir/", '-c', $conf);
    wait_until(sub {
        die "nginx exited\n" unless alive('nginx');
        my @workers = nginx_worker_pids();
        @workers >= ($o{workers} // 2) && port_open($S{nginx_port});
    }, $o{timeout} // scaled(10), "nginx listens on $S{nginx_port}")
        or give_up("nginx did not start: " . slurp("$dir/nginx.stderr")
            . slurp("$dir/error.log"));
    return $S{nginx_port};
}

# One server block on the test's port that talks to the test's Redis: the
# stanza every test's nginx has.  Options: redis (the offload_redis
# arguments, default @REDIS@), server (the block's other lines), http
# (lines before it), and start_nginx's workers, wrapper, timeout and main
# (nginx.conf's main context).
# Returns what start_nginx does.
sub start_server_nginx {
    my (%o) = @_;
    my $redis = $o{redis} // '@REDIS@';
    my $server = $o{server} // '';
    my $http = $o{http} // '';
    return start_nginx(workers => $o{workers}, wrapper => $o{wrapper},
        timeout => $o{timeout}, main => $o{main}, http => <<"HTTP");
$http
server {
    listen 127.0.0.1:\@PORT\@;
    offload_redis $redis;
$server
}
HTTP
}

# start_server_nginx's server with /sync/<queue>, /async/<queue> (offload_mode
# async) and the jobs endpoint at /jobs/; options as start_server_nginx's.
sub start_async_nginx {
    my (%o) = @_;
    return start_server_nginx(%o, server =>
        "    location ~ ^/sync/([^/]+)\$ { offload_pass \$1; }\n"
        . "    location ~ ^/async/([^/]+)\$ {\n"
        . "        offload_pass \$1; offload_mode async;\n    }\n"
        . "    location /jobs/ { offload_jobs; }\n"
        . ($o{server} // ''));
}

# The nginx most tests want: start_server_nginx's server with
# `/jobs/<queue>` locations that pass to the queue, then wait until it
# answers.  Options: start_server_nginx's, and ready ([path, body] to wait
# on, default echo).
sub start_jobs_nginx {
    my (%o) = @_;
    my ($path, $body) = @{ $o{ready} // [ '/jobs/echo', '{}' ] };
    start_server_nginx(%o, server =>
        "    location ~ ^/jobs/([^/]+)\$ { offload_pass \$1; }\n"
        . ($o{server} // ''));
    return wait_nginx_ready($path, $body, $o{workers});
}

# Stops nginx (SIGTERM, or $sig: QUIT for a graceful stop); returns the wait
# status.
sub stop_nginx {
    my ($sig) = @_;
    return stop_proc('nginx', scaled(15), $sig);
}

# Runs `nginx -t` on an nginx.conf made from %o; returns (exit code, output).
sub nginx_test {
    my (%o) = @_;
    my $file = write_nginx_conf(%o, file => tmpdir() . '/nginx-t.conf');
    my $env = nginx_env();
    local @ENV{keys %$env} = values %$env;
    my $dir = tmpdir();
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $file 2>&1`;
    return ($? >> 8, $out);
}

sub child_pids {
    my ($parent) = @_;
    my @pids = grep { /\d/ } split /\s+/,
        `ps --ppid $parent -o pid= 2>/dev/null`;
    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;
}

sub nginx_worker_pids {
    my $master = nginx_pid() or return ();
    return child_pids($master);
}

# Waits until every nginx worker subscribed to its reply channel and a POST
# to $path succeeds.
sub wait_nginx_ready {
    my ($path, $body, $workers) = @_;
    $workers //= 2;
    return wait_until(sub {
        my $ch = redis_cmd('PUBSUB', 'CHANNELS', 'offload:reply:*');
        return 0 unless ref $ch eq 'ARRAY' && @$ch >= $workers;
        for (1 .. 2 * $workers) {
            my $r = http('POST', $path, $body // '{}');
            return 0 unless $r->{status} == 200;
        }
        1;
    }, scaled(15), "nginx workers subscribed and $path answers 200");
}


# ---- HTTP -----------------------------------------------------------------

# http(method, path, body, {headers}, timeout) -> { status, headers, content,
# json, ms }.  Header names are lower case.
sub http {
    my ($method, $path, $body, $headers, $timeout) = @_;
    my $ua = HTTP::Tiny->new(timeout => $timeout // scaled(30),
        keep_alive => 0);
    my %opt = (headers => { %{ $headers // {} } });
    if (defined $body) {
        $opt{content} = $body;
        $opt{headers}{'content-type'} //= 'application/json';
    }
    my $t0 = time;
    my $r = $ua->request($method, "http://127.0.0.1:$S{nginx_port}$path",
        \%opt);
    $r->{ms} = (time - $t0) * 1000;
    $r->{json} = json_decode($r->{content}) if length($r->{content} // '');
    return $r;
}

sub post_json {
    my ($path, $data, $timeout) = @_;
    return http('POST', $path, ref $data ? json_encode($data) : $data, undef,
        $timeout);
}


# Sends one POST (with the headers of the hash %$headers, if given) on a new
# connection and returns the socket without waiting: read the answer from
# it (the connection closes after it), or close it to walk away.
sub send_post {
    my ($path, $body, $headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $S{nginx_port}, Proto => 'tcp') or die "connect: $!";
    print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n"
        . join('', map { "$_: $headers->{$_}\r\n" }
               sort keys %{ $headers || {} })
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

# Reads the whole answer to a send_post (the server closes the connection
# after it) within $timeout s: { status, content, json }, status 0 if none.
sub read_answer {
    my ($s, $timeout) = @_;
    my $raw = read_raw($s, $timeout // scaled(30));
    my ($status) = $raw =~ m{^HTTP/1\.1 (\d+)};
    my ($content) = $raw =~ /\r\n\r\n(.*)\z/s;
    return { status => $status // 0, content => $content,
             json => json_decode($content // '') };
}

# Posts {} to $path, whose queue "parked" nobody reads, and answers the job
# as a worker answers a big one: $body behind a header line, RPUSHed to the
# result key in 256 KB slices, with the notice "ON1 <id>" when $notice (or
# none: the module's last look at its deadline finds it).  Returns the
# answer, as read_answer.
sub parked_list_answer {
    my ($path, $body, $notice, $timeout) = @_;
    my $stream = 'offload:{parked}:jobs';
    my $n = redis_cmd('XLEN', $stream);
    my $s = send_post($path, '{}');
    wait_until(sub { redis_cmd('XLEN', $stream) > $n }, $timeout,
        'parked job');
    my $e = stream_entries($stream)->[-1];
    my $data = "OR1 $e->{id} 200 1 1 1 1\n$body";
    redis_cmd('RPUSH', "offload:{parked}:result:$e->{id}",
        map { substr($data, $_ * 262144, 262144) }
        0 .. int((length($data) - 1) / 262144));
    redis_cmd('PUBLISH', $e->{reply}, "ON1 $e->{id}") if $notice;
    return read_answer($s, $timeout);
}

# All a socket gives until the server closes it or $timeout s pass; closes
# it.
sub read_raw {
    my ($s, $timeout) = @_;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($s);
    my $raw = '';
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($s, $raw, 65536, length $raw);
        last unless $n;
    }
    close $s;
    return $raw;
}

# Sends GETs for @paths one after another on one keep-alive connection
# (the last closes it) and returns the answers' statuses: an answer that
# ends the connection early leaves the rest out.
sub pipelined {
    my (@paths) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $S{nginx_port}, Proto => 'tcp') or die "connect: $!";
    for my $i (0 .. $#paths) {
        print $s "GET $paths[$i] HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . ($i == $#paths ? "Connection: close\r\n" : '') . "\r\n";
    }
    my $raw = read_raw($s, scaled(30));
    my @statuses;
    while (my $r = parse_response(\$raw)) {
        push @statuses, $r->{status};
    }
    return @statuses;
}

# Async job $id's status as GET /jobs/<id> tells it, or ''.
sub async_job_status { http('GET', "/jobs/$_[0]")->{json}{status} // '' }

# POSTs an async sleep job of $ms ms to /async/sleep (202 checked) and
# waits until it runs; returns its id.
sub running_sleep_job {
    my ($ms) = @_;
    my $r = post_json('/async/sleep', qq({"ms":$ms}));
    is($r->{status}, 202, "a $ms ms job: 202") or diag($r->{content});
    my $id = $r->{json}{id} // '';
    ok(wait_until(sub { async_job_status($id) eq 'running' }, scaled(10),
        "job $id running"), "the $ms ms job runs");
    return $id;
}

# EVALSHA calls Redis has run so far: nginx's reads of job records are
# (and its submits; EVAL only once after a NOSCRIPT), the sidecar's
# periodic scripts are not (they are EVALs, several a second).
sub evalsha_calls {
    my $info = redis_cmd('INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}

# stub_status' Writing at /nginx_status: the requests nginx holds past
# their heads (this one too)
sub nginx_writing {
    my $c = http('GET', '/nginx_status')->{content} // '';
    return $c =~ /Writing: (\d+)/ ? $1 : -1;
}

# Sends a keep-alive GET of $path on $s, or on a new connection; returns the
# socket (next_answer reads what comes back).
sub keepalive_get {
    my ($path, $s) = @_;
    $s //= IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $S{nginx_port}, Proto => 'tcp') or die "connect: $!";
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    return $s;
}

# The next whole answer on keep-alive socket $s, as parse_response's with
# json, or undef when none came within $timeout s or the server closed it.
# What $s gave beyond the answers taken stays with $s.
sub next_answer {
    my ($s, $timeout) = @_;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($s);
    my $in = \${*$s}{offload_unread};
    $$in //= '';
    while (1) {
        my $r = parse_response($in);
        if ($r) {
            $r->{json} = json_decode($r->{content});
            return $r;
        }
        my $left = $deadline - time;
        return undef if $left <= 0 || !$sel->can_read($left);
        sysread($s, $$in, 65536, length $$in) or return undef;
    }
}

# How many of a queue's jobs workers hold (delivered, not yet acked).
sub pending_jobs {
    my ($queue) = @_;
    my $p = redis_cmd('XPENDING', "offload:{$queue}:jobs", 'workers');
    return ref $p eq 'ARRAY' ? $p->[0] : 0;
}

# concurrent_posts(n_conns, jobs_per_conn, make_body, path => ..., timeout =>,
#                  host => ..., port => ...)
# POSTs {"i":1} .. {"i":n} to $path one after the other, until one is not
# answered 200 with its own payload: returns n when all were, else the
# first answer that was not ("job <i>: <status> <content>").
sub jobs_in_turn {
    my ($path, $n) = @_;
    for my $i (1 .. $n) {
        my $r = post_json($path, { i => $i });
        return "job $i: $r->{status} $r->{content}"
            unless $r->{status} == 200 && ($r->{json}{i} // 0) == $i;
    }
    return $n;
}

# Runs n_conns keep-alive HTTP/1.1 connections at once (to host:port,
# default this test's nginx on 127.0.0.1), each POSTing
# jobs_per_conn requests one after the other; make_body->(conn, job) gives
# each body.  Returns a list of { conn, job, body, status, headers, content,
# at } (at: when the answer was complete; status 0 and an error for requests
# that got no answer).
sub concurrent_posts {
    my ($nconn, $per, $make_body, %o) = @_;
    my $path = $o{path} // '/jobs/echo';
    my $deadline = time + ($o{timeout} // scaled(60));
    my (@conns, @results);
    my $sel = IO::Select->new;

    for my $c (0 .. $nconn - 1) {
        my $s = IO::Socket::INET->new(PeerAddr => $o{host} // '127.0.0.1',
            PeerPort => $o{port} // $S{nginx_port}, Proto => 'tcp',
            Timeout => 5) or die "connect: $!";
        $s->blocking(0);
        setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
        my $conn = { id => $c, sock => $s, job => 0, per => $per,
            in => '', out => '' };
        $conns[$c] = $conn;
        $sel->add($s);
        next_request($conn, $path, $make_body);
    }
    my %by_sock = map { ("$_->{sock}" => $_) } @conns;

    while ($sel->count && time < $deadline) {
        my @w = map { $_->{sock} } grep { length $_->{out} } @conns;
        my ($r, $w) = IO::Select->select($sel, IO::Select->new(@w), undef,
            0.5);
        for my $s (@{ $w || [] }) {
            my $conn = $by_sock{"$s"};
            next unless $conn->{sock};
            my $n = syswrite($s, $conn->{out});
            if (defined $n) {
                substr($conn->{out}, 0, $n) = '';
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                conn_fail($conn, $sel, "write: $!", \@results);
            }
        }
        for my $s (@{ $r || [] }) {
            my $conn = $by_sock{"$s"};
            next unless $conn->{sock};
            my $n = sysread($s, $conn->{in}, 262144, length $conn->{in});
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                conn_fail($conn, $sel, "read: $!", \@results);
                next;
            }
            if ($n == 0) {
                conn_fail($conn, $sel, 'connection closed', \@results);
                next;
            }
            while (my $resp = parse_response(\$conn->{in})) {
                push @results, { %{ $conn->{cur} }, %$resp, at => time };
                delete $conn->{cur};
                if ($conn->{job} < $per) {
                    next_request($conn, $path, $make_body);
                } else {
                    $sel->remove($s);
                    close $s;
                    $conn->{sock} = undef;
                    last;
                }
            }
        }
    }
    for my $conn (grep { $_->{sock} } @conns) {
        conn_fail($conn, $sel, 'timed out', \@results);
    }
    return @results;
}

sub next_request {
    my ($conn, $path, $make_body) = @_;
    my $body = $make_body->($conn->{id}, $conn->{job});
    $conn->{cur} = { conn => $conn->{id}, job => $conn->{job}, body => $body };
    $conn->{job}++;
    $conn->{out} .= "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
}

sub conn_fail {
    my ($conn, $sel, $err, $results) = @_;
    push @$results, { %{ $conn->{cur} }, status => 0, error => $err }
        if $conn->{cur};
    delete $conn->{cur};
    for my $job ($conn->{job} .. $conn->{per} - 1) {
        push @$results, { conn => $conn->{id}, job => $job, status => 0,
            error => "not sent: $err" };
    }
    $conn->{job} = $conn->{per};
    if ($conn->{sock}) {
        $sel->remove($conn->{sock});
        close $conn->{sock};
        $conn->{sock} = undef;
    }
}

# Takes one complete HTTP/1.1 response off the front of $$buf, or undef.
sub parse_response {
    my ($buf) = @_;
    my $end = index($$buf, "\r\n\r\n");
    return undef if $end < 0;
    my $head = substr($$buf, 0, $end);
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line: $status_line";
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }
    my $pos = $end + 4;
    my $content;
    if (defined $h{'content-length'}) {
        return undef if length($$buf) < $pos + $h{'content-length'};
        $content = substr($$buf, $pos, $h{'content-length'});
        $pos += $h{'content-length'};
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $content = '';
        while (1) {
            my $le = index($$buf, "\r\n", $pos);
            return undef if $le < 0;
            my $size = hex substr($$buf, $pos, $le - $pos);
            return undef if length($$buf) < $le + 2 + $size + 2;
            $content .= substr($$buf, $le + 2, $size);
            $pos = $le + 2 + $size + 2;
            last if $size == 0;
        }
    } else {
        die "response without Content-Length or chunked encoding";
    }
    substr($$buf, 0, $pos) = '';
    return { status => $status, headers => \%h, content => $content };
}


# ---- teardown -------------------------------------------------------------

my @NGINX_BAD = ('exited on signal', '[alert]', 'AddressSanitizer',
    'runtime error', 'LeakSanitizer');
my @SIDECAR_BAD = ('AddressSanitizer', 'runtime error', 'LeakSanitizer');

# Lines of $text that contain one of @bad.
sub bad_lines {
    my ($text, @bad) = @_;
    return grep { my $l = $_; grep { index($l, $_) >= 0 } @bad }
        split /\n/, $text;
}

# Stops nginx, the sidecar and redis, in that order.
sub stop_all {
    my $status = {};
    $status->{nginx} = stop_nginx() if $S{procs}{nginx};
    $status->{sidecar} = stop_sidecar() if $S{procs}{sidecar};
    stop_redis() if $S{procs}{redis};
    for my $name (keys %{ $S{procs} }) {
        stop_proc($name, 10);
    }
    return $status;
}

# Stops everything, fails if a log shows a crash, alert or sanitizer report,
# then done_testing.
sub finish {
    my $dir = tmpdir();
    my $had_nginx = -e "$dir/error.log";
    my $had_sidecar = -e "$dir/sidecar.conf";
    my $status = stop_all();
    if ($had_nginx) {
        my @bad = bad_lines(slurp("$dir/error.log")
            . slurp("$dir/nginx.stderr"), @NGINX_BAD);
        ok(!@bad, 'nginx error.log: no crash, alert or sanitizer report')
            or diag(join "\n", @bad[0 .. ($#bad < 30 ? $#bad : 30)]);
    }
    if ($had_sidecar) {
        my @bad = bad_lines(slurp("$dir/sidecar.log")
            . slurp("$dir/sidecar.stderr"), @SIDECAR_BAD);
        ok(!@bad, 'sidecar log: no sanitizer report')
            or diag(join "\n", @bad[0 .. ($#bad < 30 ? $#bad : 30)]);
        if (defined $status->{sidecar}) {
            is($status->{sidecar}, 0, 'sidecar exited 0 on SIGTERM');
        }
    }
    done_testing();
}

END {
    # leave no process behind, whatever happened (only in the test process,
    # not in a child it forked)
    return unless $$ == $S{owner};
    my $rc = $?;
    for my $name (qw(nginx sidecar redis), keys %{ $S{procs} }) {
        stop_proc($name, 5) if $S{procs}{$name};
    }
    $? = $rc;
}

1;
