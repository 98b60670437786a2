/*
 * longpoll_bench.c -- many connections held open on one nginx, for
 * bench/run to measure what each costs the nginx worker (its RSS, read by
 * bench/run from /proc, not here).
 *
 *   longpoll-bench <port> <n> [<path> [echo | close]]
 *
 * Opens n loopback connections to 127.0.0.1:<port>; on each sends
 * "GET <path>" (a long poll that stays parked), or nothing without a path
 * (idle connections: the cost of a connection alone).  With "close", the
 * GET says "Connection: close" (a poll nginx cannot park without its
 * request, docs/HTTP_API.md).  With "echo", each
 * connection i POSTs {"n":<i>} to <path> instead (a sync echo job that
 * stays in flight while the queue's workers are held) and expects exactly
 * that body back.  Prints "open <n>" once every request is written, then
 * answers lines on stdin until it ends, which closes every connection:
 *
 *   check       "answered <k>": the connections that got an answer or were
 *               closed meanwhile (0 when every request is still parked)
 *   wait <s>    reads the answers for at most <s> seconds, until each
 *               connection has a whole one: "ok <k> wrong <w> missing <m>",
 *               ok the 200s whose body is the one expected (with "echo";
 *               any 200 otherwise), wrong the other answers and closed
 *               connections, missing those without a whole answer yet
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "bench_time.h"

#define ANSWER_MAX  2048    /* an echo answer's headers and its body */


static int
write_all(int fd, const char *p, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t) n;
    }

    return 0;
}


typedef struct {
    char    *buf;           /* the answer so far, ANSWER_MAX bytes */
    size_t   len;
} answer_t;


/*
 * 1 once buf holds a whole answer (headers and a Content-Length body), 0
 * before; *ok when it is a 200 whose body is want (any body if want is
 * NULL).
 */
static int
answer_whole(const char *buf, size_t len, const char *want, int *ok)
{
    const char  *end, *cl;
    size_t       head, body;

    end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }

    head = (size_t) (end + 4 - buf);
    cl = memmem(buf, head, "\r\nContent-Length: ", 18);
    body = cl ? strtoul(cl + 18, NULL, 10) : 0;

    if (len < head + body) {
        return 0;
    }

    *ok = strncmp(buf, "HTTP/1.1 200 ", 13) == 0
          && (want == NULL
              || (body == strlen(want) && memcmp(end + 4, want, body) == 0));
    return 1;
}


/* Reads the answers for at most ms, as "wait" tells above. */
static void
wait_answers(struct pollfd *pfd, int n, int echo, double ms)
{
    int        i, ok, good, wrong, left;
    char       want[64];
    ssize_t    r;
    double     deadline;
    answer_t  *a;

    a = calloc((size_t) n, sizeof(answer_t));
    if (a == NULL) {
        fprintf(stderr, "longpoll-bench: out of memory\n");
        exit(1);
    }

    good = 0;
    wrong = 0;
    left = n;
    deadline = mono_ms() + ms;

    while (left > 0 && mono_ms() < deadline) {
        if (poll(pfd, (nfds_t) n, 100) < 0 && errno != EINTR) {
            fprintf(stderr, "longpoll-bench: poll: %s\n", strerror(errno));
            exit(1);
        }

        for (i = 0; i < n; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0) {
                continue;
            }

            if (a[i].buf == NULL && (a[i].buf = malloc(ANSWER_MAX)) == NULL) {
                fprintf(stderr, "longpoll-bench: out of memory\n");
                exit(1);
            }

            r = read(pfd[i].fd, a[i].buf + a[i].len,
                     ANSWER_MAX - 1 - a[i].len);
            if (r < 0 && errno == EINTR) {
                continue;
            }

            if (r > 0) {
                a[i].len += (size_t) r;
                ok = 0;
                snprintf(want, sizeof(want), "{\"n\":%d}", i);
                if (!answer_whole(a[i].buf, a[i].len, echo ? want : NULL,
                                  &ok)
                    && a[i].len < ANSWER_MAX - 1)
                {
                    continue;
                }
                /* whole, or too long to be the answer expected */
                ok = ok && a[i].len < ANSWER_MAX - 1;
            } else {
                ok = 0;             /* closed, or reset, before an answer */
            }

            good += ok;
            wrong += !ok;
            left--;
            free(a[i].buf);
            a[i].buf = NULL;
            pfd[i].fd = -1 - pfd[i].fd;     /* poll skips it, kept open */
        }
    }

    for (i = 0; i < n; i++) {
        free(a[i].buf);
        if (pfd[i].fd < 0) {
            pfd[i].fd = -1 - pfd[i].fd;
        }
    }
    free(a);

    printf("ok %d wrong %d missing %d\n", good, wrong, left);
    fflush(stdout);
}


int
main(int argc, char **argv)
{
    int                  i, n, k, port, echo, close_it;
    char                 req[1024], body[32], line[64];
    double               s;
    size_t               len;
    struct pollfd       *pfd;
    struct rlimit        rl;
    struct sockaddr_in   sin;

    echo = argc == 5 && strcmp(argv[4], "echo") == 0;
    close_it = argc == 5 && strcmp(argv[4], "close") == 0;

    if (argc < 3 || argc > 5 || (argc == 5 && !echo && !close_it)
        || (port = atoi(argv[1])) < 1 || (n = atoi(argv[2])) < 1)
    {
        fprintf(stderr, "usage: longpoll-bench <port> <n> "
                "[<path> [echo | close]]\n");
        return 2;
    }

    if (argc >= 4 && strlen(argv[3]) > 512) {
        fprintf(stderr, "longpoll-bench: path too long\n");
        return 2;
    }

    /* n sockets and a few more, within the hard limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) n + 16) {
        rl.rlim_cur = rl.rlim_max;
        if (rl.rlim_cur < (rlim_t) n + 16 || setrlimit(RLIMIT_NOFILE, &rl)) {
            fprintf(stderr, "longpoll-bench: %d descriptors not allowed\n",
                    n);
            return 1;
        }
    }

    pfd = calloc((size_t) n, sizeof(struct pollfd));
    if (pfd == NULL) {
        fprintf(stderr, "longpoll-bench: out of memory\n");
        return 1;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    for (i = 0; i < n; i++) {
        len = 0;
        if (echo) {
            snprintf(body, sizeof(body), "{\"n\":%d}", i);
            len = (size_t) snprintf(req, sizeof(req),
                                    "POST %s HTTP/1.1\r\nHost: localhost\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Content-Length: %zu\r\n\r\n%s",
                                    argv[3], strlen(body), body);
        } else if (argc >= 4) {
            len = (size_t) snprintf(req, sizeof(req),
                                    "GET %s HTTP/1.1\r\n"
                                    "Host: localhost\r\n%s\r\n", argv[3],
                                    close_it ? "Connection: close\r\n" : "");
        }

        pfd[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        pfd[i].events = POLLIN;

        if (pfd[i].fd < 0
            || connect(pfd[i].fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
            || (len && write_all(pfd[i].fd, req, len) != 0))
        {
            fprintf(stderr, "longpoll-bench: connection %d: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }

    printf("open %d\n", n);
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (sscanf(line, "wait %lf", &s) == 1) {
            wait_answers(pfd, n, echo, s * 1000);
            continue;
        }

        if (poll(pfd, (nfds_t) n, 0) < 0) {
            fprintf(stderr, "longpoll-bench: poll: %s\n", strerror(errno));
            return 1;
        }

        for (k = 0, i = 0; i < n; i++) {
            k += (pfd[i].revents != 0);
        }

        printf("answered %d\n", k);
        fflush(stdout);
    }

    return 0;
}
