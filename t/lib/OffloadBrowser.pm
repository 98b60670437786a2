package OffloadBrowser;

# OffloadBrowser -- headless Chromium driven over the DevTools protocol,
# with core Perl only: a minimal WebSocket client (RFC 6455: text frames,
# masked from the client, no extensions) and the few commands a test needs
# (navigate, evaluate, click at a point, screenshot).  Loopback only.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time sleep);
use OffloadTest qw(tmpdir slurp spawn stop_proc wait_until json_encode
    json_decode scaled);

sub chromium {
    my ($path) = grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser);
    return $path;
}

# Starts Chromium on about:blank and connects to its page.
sub new {
    my ($class, %o) = @_;
    my $dir = tmpdir();
    my $log = "$dir/chromium.log";
    spawn('chromium', $log, {}, chromium(), qw(--headless --no-sandbox
        --disable-gpu --hide-scrollbars --no-first-run
        --remote-debugging-port=0), "--user-data-dir=$dir/profile",
        '--window-size=' . ($o{size} // '1280,900'), 'about:blank');
    my $port;
    wait_until(sub {
        ($port) = slurp($log) =~ m{DevTools listening on ws://127\.0\.0\.1:(\d+)/};
        $port;
    }, scaled(30), 'chromium DevTools port') or die "chromium: " . slurp($log);

    my $ws;
    wait_until(sub {
        my $list = http_get($port, '/json/list') or return 0;
        my ($page) = grep { $_->{type} eq 'page' } @{ json_decode($list) || [] };
        ($ws) = ($page->{webSocketDebuggerUrl} // '') =~ m{^ws://[^/]+(/.*)$};
        $ws;
    }, scaled(10), 'chromium page') or die "chromium: no page\n";

    my $self = bless { port => $port, id => 0 }, $class;
    $self->{sock} = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp') or die "connect: $!";
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    print { $self->{sock} } "GET $ws HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        sysread($self->{sock}, $head, 1, length $head) or die "ws: closed\n";
    }
    die "ws: $head" unless $head =~ m{^HTTP/1\.1 101};
    return $self;
}

# GET of the DevTools HTTP endpoint (HTTP/1.1: it ignores 1.0).
sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or return undef;
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n\r\n";
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + 5;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        sysread($s, $raw, 65536, length $raw) or last;
        my ($head, $body) = $raw =~ /\A(.*?\r\n\r\n)(.*)\z/s or next;
        my ($len) = $head =~ /Content-Length:\s*(\d+)/i;
        return $body if defined $len && length $body >= $len;
    }
    return undef;
}

sub send_frame {
    my ($self, $text) = @_;
    my $len = length $text;
    my $head = chr(0x81);
    if ($len < 126) {
        $head .= chr(0x80 | $len);
    } elsif ($len < 65536) {
        $head .= chr(0x80 | 126) . pack('n', $len);
    } else {
        $head .= chr(0x80 | 127) . pack('Q>', $len);
    }
    my $mask = join '', map { chr int rand 256 } 1 .. 4;
    my $masked = $text ^ substr($mask x (int($len / 4) + 1), 0, $len);
    print { $self->{sock} } $head . $mask . $masked;
}

sub read_exact {
    my ($self, $n, $deadline) = @_;
    my $buf = '';
    my $sel = IO::Select->new($self->{sock});
    while (length $buf < $n) {
        my $left = $deadline - time;
        die "ws: timed out\n" if $left <= 0 || !$sel->can_read($left);
        sysread($self->{sock}, $buf, $n - length $buf, length $buf)
            or die "ws: closed\n";
    }
    return $buf;
}

# The next whole message (continuation frames joined).
sub read_message {
    my ($self, $deadline) = @_;
    my $msg = '';
    for (;;) {
        my ($b0, $b1) = unpack 'CC', $self->read_exact(2, $deadline);
        my $len = $b1 & 0x7f;
        $len = unpack 'n', $self->read_exact(2, $deadline) if $len == 126;
        $len = unpack 'Q>', $self->read_exact(8, $deadline) if $len == 127;
        $msg .= $self->read_exact($len, $deadline) if $len;
        return $msg if $b0 & 0x80;
    }
}

# Sends a DevTools command and returns its result (events are skipped).
sub call {
    my ($self, $method, %params) = @_;
    my $id = ++$self->{id};
    $self->send_frame(json_encode({ id => $id, method => $method,
        params => \%params }));
    my $deadline = time + scaled(30);
    for (;;) {
        my $m = json_decode($self->read_message($deadline)) or next;
        next unless ($m->{id} // 0) == $id;
        die "$method: $m->{error}{message}\n" if $m->{error};
        return $m->{result};
    }
}

sub navigate { $_[0]->call('Page.navigate', url => $_[1]) }

# The value of a JavaScript expression.
sub eval_js {
    my ($self, $expr) = @_;
    my $r = $self->call('Runtime.evaluate', expression => $expr,
        returnByValue => JSON::PP::true());
    return $r->{result}{value};
}

# A real mouse click (pressed and released) at the centre of the element.
sub click {
    my ($self, $selector) = @_;
    my $box = $self->eval_js('(function () { var r = document.querySelector('
        . json_encode($selector) . ').getBoundingClientRect();'
        . ' return [r.x + r.width / 2, r.y + r.height / 2]; })()')
        or die "click: no $selector\n";
    for my $type (qw(mousePressed mouseReleased)) {
        $self->call('Input.dispatchMouseEvent', type => $type,
            x => $box->[0], y => $box->[1], button => 'left',
            clickCount => 1);
    }
}

sub screenshot {
    my ($self, $file) = @_;
    my $r = $self->call('Page.captureScreenshot', format => 'png');
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh decode_base64($r->{data});
    close $fh;
}

sub quit {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    stop_proc('chromium', 10);
}

1;
