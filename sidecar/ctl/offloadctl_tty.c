/*
 * offloadctl_tty.c -- what offloadctl prints to a terminal is shown, never
 * obeyed.  Most of what it prints comes from Redis: node and queue names,
 * dead letters' payloads, crash reports, handlers' error messages.  Anyone
 * who can write to that Redis (a job's submitter, through a payload or an
 * error message its handler quotes) could put an escape sequence there
 * that retitles, recolours or rewrites the operator's terminal, or hides
 * a line of output.
 *
 * So, as ls -q does on a terminal, standard output and standard error,
 * when they are a terminal, go through a filter that prints '?' for every
 * control character but newline and tab: C0 (below 0x20), DEL, and the C1
 * controls as UTF-8 encodes them (U+0080..U+009F: 0xc2 then 0x80..0x9f),
 * which some terminals obey too.  Output to a pipe or a file stays byte
 * for byte (offloadctl result ... > file).  top draws with ncurses, which
 * prints control characters as ^X itself, and its batch mode is filtered.
 */

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "offloadctl.h"


typedef struct {
    int  fd;
    int  held_c2;       /* a 0xc2 written last, its next byte not yet seen */
} tty_t;


static int
write_all(int fd, const char *buf, size_t size)
{
    ssize_t  n;

    while (size > 0) {
        n = write(fd, buf, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += n;
        size -= (size_t) n;
    }

    return 0;
}


static ssize_t
tty_write(void *cookie, const char *buf, size_t size)
{
    char            out[1024];
    size_t          i, n = 0;
    tty_t          *tty = cookie;
    unsigned char   c;

    for (i = 0; i < size; i++) {
        c = (unsigned char) buf[i];

        /* room for a held 0xc2 and the byte after it */
        if (n + 2 > sizeof(out)) {
            if (write_all(tty->fd, out, n) != 0) {
                return -1;
            }
            n = 0;
        }

        if (tty->held_c2) {
            tty->held_c2 = 0;
            if (c >= 0x80 && c <= 0x9f) {
                out[n++] = '?';
                continue;
            }
            out[n++] = (char) 0xc2;
        }

        if (c == 0xc2) {
            tty->held_c2 = 1;
        } else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            out[n++] = '?';
        } else {
            out[n++] = (char) c;
        }
    }

    if (write_all(tty->fd, out, n) != 0) {
        return -1;
    }

    return (ssize_t) size;
}


static int
tty_close(void *cookie)
{
    tty_t  *tty = cookie;

    if (tty->held_c2) {
        tty->held_c2 = 0;
        return write_all(tty->fd, "\xc2", 1);
    }

    return 0;
}


static FILE *
guard(FILE *fp, tty_t *tty, int mode)
{
    FILE  *filtered;

    static const cookie_io_functions_t  io = {
        .write = tty_write,
        .close = tty_close,
    };

    tty->fd = fileno(fp);
    if (tty->fd < 0 || !isatty(tty->fd)) {
        return fp;
    }

    filtered = fopencookie(tty, "w", io);
    if (filtered == NULL) {
        return fp;
    }

    fflush(fp);
    setvbuf(filtered, NULL, mode, BUFSIZ);

    return filtered;
}


void
ctl_tty_guard(void)
{
    static tty_t  out, err;

    stdout = guard(stdout, &out, _IOLBF);
    stderr = guard(stderr, &err, _IONBF);
}
