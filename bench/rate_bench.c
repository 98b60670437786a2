/*
 * rate_bench.c -- latency at a light, fixed load: n requests on one
 * keep-alive connection, one every 1/rate s, for bench/run (wrk can only
 * send as fast as answers come back, so even wrk -c2 saturates a small
 * machine once the jobs' work behind the answers is counted).
 *
 *   rate-bench [-H '<name>: <value>'] <port> <path> <rate/s> <n> [<body>]
 *
 * With a body, POSTs it as application/json, else GETs; -H adds a header
 * line to each request (Accept-Encoding: gzip, as scrapers send).  A request's
 * latency counts from the time it was due, not from when it was sent: a
 * late answer delays the next request and that wait counts too (no
 * coordinated omission).  Prints "n=<n> p50_ms=.. p90_ms=.. p99_ms=..
 * max_ms=.. non2xx=<k> cpu_us=.. wait_us=..", the last two its own time
 * on a CPU and waiting for one (runnable, /proc/self/schedstat) per
 * request; exits 1 if the connection fails.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "bench_time.h"


/* this thread's ns on a CPU and waiting for one, from schedstat */
static void
sched_ns(double *run, double *wait)
{
    FILE  *f;

    *run = 0;
    *wait = 0;

    f = fopen("/proc/self/schedstat", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf %lf", run, wait) != 2) {
            *run = 0;
            *wait = 0;
        }
        fclose(f);
    }
}


/*
 * Reads one answer (headers and a Content-Length body): its status or -1;
 * *closing when nginx closes the connection after it (keepalive_requests).
 */
static int
read_answer(int fd, int *closing)
{
    int      status;
    char     buf[65536], *end, *cl;
    size_t   have, need;
    ssize_t  r;

    have = 0;
    end = NULL;

    while (end == NULL) {
        r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0) {
            return -1;
        }
        have += (size_t) r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL && have == sizeof(buf) - 1) {
            return -1;
        }
    }

    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }

    *closing = (strcasestr(buf, "\r\nConnection: close") != NULL);
    cl = strcasestr(buf, "\r\nContent-Length:");
    need = (size_t) (end + 4 - buf)
           + (cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0);

    while (have < need) {
        r = read(fd, buf, sizeof(buf) < need - have ? sizeof(buf)
                                                    : need - have);
        if (r <= 0) {
            return -1;
        }
        have += (size_t) r;
    }

    return status;
}


static int
connect_to(struct sockaddr_in *sin)
{
    int  fd, one;

    one = 1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) sin, sizeof(*sin)) != 0
        || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
    {
        fprintf(stderr, "rate-bench: connect: %s\n", strerror(errno));
        exit(1);
    }

    return fd;
}


int
main(int argc, char **argv)
{
    int                  i, n, fd, status, bad, closing;
    char                 req[4096], header[1024];
    double               rate, due, *ms, run0, wait0, run1, wait1;
    size_t               len;
    ssize_t              w;
    struct timespec      ts;
    struct sockaddr_in   sin;

    header[0] = '\0';

    if (argc > 2 && strcmp(argv[1], "-H") == 0) {
        if (snprintf(header, sizeof(header), "%s\r\n", argv[2])
            >= (int) sizeof(header))
        {
            fprintf(stderr, "rate-bench: header too long\n");
            return 2;
        }
        argv += 2;
        argc -= 2;
    }

    if (argc < 5 || argc > 6 || atoi(argv[1]) < 1
        || (rate = atof(argv[3])) <= 0 || (n = atoi(argv[4])) < 1)
    {
        fprintf(stderr, "usage: rate-bench [-H '<name>: <value>'] <port> "
                        "<path> <rate/s> <n> [<body>]\n");
        return 2;
    }

    if (argc == 6) {
        len = (size_t) snprintf(req, sizeof(req),
                                "POST %s HTTP/1.1\r\nHost: localhost\r\n%s"
                                "Content-Type: application/json\r\n"
                                "Content-Length: %zu\r\n\r\n%s",
                                argv[2], header, strlen(argv[5]), argv[5]);
    } else {
        len = (size_t) snprintf(req, sizeof(req),
                                "GET %s HTTP/1.1\r\nHost: localhost\r\n%s"
                                "\r\n", argv[2], header);
    }

    ms = malloc(sizeof(double) * (size_t) n);
    if (len >= sizeof(req) || ms == NULL) {
        fprintf(stderr, "rate-bench: request too long\n");
        return 2;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    fd = connect_to(&sin);
    bad = 0;
    sched_ns(&run0, &wait0);
    due = mono_ms();

    for (i = 0; i < n; i++) {
        due += 1000.0 / rate;

        /* sleep until due (absolute, so sleeps do not add up) */
        ts.tv_sec = (time_t) (due / 1000);
        ts.tv_nsec = (long) ((due - ts.tv_sec * 1000.0) * 1e6);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
               == EINTR)
        {
            /* void */
        }

        w = write(fd, req, len);
        status = (w == (ssize_t) len) ? read_answer(fd, &closing) : -1;
        if (status < 0) {
            fprintf(stderr, "rate-bench: request %d: connection lost\n", i);
            return 1;
        }

        ms[i] = mono_ms() - due;
        bad += (status < 200 || status > 299);

        if (closing) {
            close(fd);
            fd = connect_to(&sin);
        }
    }

    sched_ns(&run1, &wait1);
    qsort(ms, (size_t) n, sizeof(double), by_value);
    printf("n=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "non2xx=%d cpu_us=%.1f wait_us=%.1f\n", n, pctl(ms, n, 50),
           pctl(ms, n, 90), pctl(ms, n, 99), ms[n - 1], bad,
           (run1 - run0) / 1e3 / n, (wait1 - wait0) / 1e3 / n);

    free(ms);
    close(fd);
    return 0;
}
