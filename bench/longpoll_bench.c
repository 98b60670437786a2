/*
 * longpoll_bench.c -- many connections held open on one nginx, for
 * bench/run to measure what each costs the nginx worker (its RSS, read by
 * bench/run from /proc, not here).
 *
 *   longpoll-bench <port> <n> [<path>]
 *
 * Opens n loopback connections to 127.0.0.1:<port>; on each sends
 * "GET <path>" (a long poll that stays parked), or nothing without a path
 * (idle connections: the cost of a connection alone).  Prints
 * "open <n>" once every request is written, then waits for a line on
 * stdin; it then prints "answered <k>", the connections that got an
 * answer or were closed meanwhile (0 when every request is still parked),
 * and exits, which closes them all.
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


int
main(int argc, char **argv)
{
    int                  i, n, k, port;
    char                 req[1024], line[64];
    size_t               len;
    struct pollfd       *pfd;
    struct rlimit        rl;
    struct sockaddr_in   sin;

    if (argc < 3 || argc > 4 || (port = atoi(argv[1])) < 1
        || (n = atoi(argv[2])) < 1)
    {
        fprintf(stderr, "usage: longpoll-bench <port> <n> [<path>]\n");
        return 2;
    }

    len = 0;
    if (argc == 4) {
        len = (size_t) snprintf(req, sizeof(req),
                                "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                argv[3]);
        if (len >= sizeof(req)) {
            fprintf(stderr, "longpoll-bench: path too long\n");
            return 2;
        }
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

    if (fgets(line, sizeof(line), stdin) == NULL) {
        return 0;
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

    return 0;
}
