/*
 * offloadctl_top.c -- `top`: Observer for a terminal.  Every second (-d)
 * it reads the nodes (offload_nodes_script, sorted by Redis) and draws the
 * queues, then the workers, in 80 columns with ncurses; keys change the
 * sort: m memory, c cpu, h held jobs (the worker's queue), r restarts,
 * j jobs; q quits.  -b prints frames to stdout instead (-n of them), as
 * top's batch mode does.
 */

#include <getopt.h>
#include <ncurses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "offloadctl.h"

#define WIDTH  80


typedef struct {
    int   batch;
    int   row;
    int   rows;         /* lines the screen has */
} screen_t;


static const struct {
    int          key;
    const char  *sort;
} sort_keys[] = {
    { 'm', "memory" }, { 'c', "cpu" }, { 'h', "queue" },
    { 'r', "restarts" }, { 'j', "jobs" }, { 0, NULL }
};


static void
line(screen_t *scr, int bold, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
line(screen_t *scr, int bold, const char *fmt, ...)
{
    char     buf[WIDTH + 1];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (scr->batch) {
        printf("%s\n", buf);
        return;
    }

    if (scr->row >= scr->rows) {
        return;
    }

    if (bold) {
        attron(A_REVERSE);
    }
    mvaddstr(scr->row, 0, buf);
    clrtoeol();
    if (bold) {
        attroff(A_REVERSE);
    }

    scr->row++;
}


static void
draw_queues(screen_t *scr, json_t *queues)
{
    char         oldest[16], p99[16], wrk[32], backlog[32], pending[32];
    char         dead[32];
    json_t      *q;
    const char  *name;

    line(scr, 1, "%-16s %-8s %4s %7s %7s %7s %7s %8s %6s", "QUEUE", "STATE",
         "WRK", "BACKLOG", "PENDING", "OLDEST", "JOBS/S", "RUN-P99", "DEAD");

    json_object_foreach(queues, name, q) {
        ctl_duration(oldest, sizeof(oldest), ctl_int(q, "oldest_ms"));
        ctl_run_time(p99, sizeof(p99), ctl_num(q, "run_p99_ms"));

        ctl_figure(wrk, sizeof(wrk), ctl_int(q, "workers"), 4);
        ctl_figure(backlog, sizeof(backlog), ctl_int(q, "backlog"), 7);
        ctl_figure(pending, sizeof(pending), ctl_int(q, "pending"), 7);
        ctl_figure(dead, sizeof(dead), ctl_int(q, "dead"), 6);

        line(scr, 0, "%-16.16s %-8s %4s %7s %7s %7s %7.1f %8s %6s",
             name, ctl_text(q, "state"), wrk, backlog, pending, oldest,
             ctl_num(q, "jobs_per_s"), p99, dead);
    }
}


static void
draw_workers(screen_t *scr, json_t *workers)
{
    char     rss[16], up[16], cpu[16], slot[32], pid[32], fds[32], held[32];
    char     jobs[32], restarts[32];
    size_t   i;
    json_t  *w;

    /* 80 columns: the last one, UPTIME, was cut off */
    line(scr, 1, "%-9s %-9s %3s %7s %-8s %6s %4s %4s %4s %6s %3s %6s",
         "NODE", "QUEUE", "SLT", "PID", "STATE", "RSS", "FDS", "CPU%", "HELD",
         "JOBS", "RST", "UPTIME");

    json_array_foreach(workers, i, w) {
        ctl_bytes(rss, sizeof(rss), ctl_int(w, "rss"));
        ctl_duration(up, sizeof(up), ctl_int(w, "uptime_ms"));
        if (ctl_num(w, "cpu_user") < 0) {
            snprintf(cpu, sizeof(cpu), "-");
        } else {
            snprintf(cpu, sizeof(cpu), "%.0f",
                     ctl_num(w, "cpu_user") + ctl_num(w, "cpu_sys"));
        }

        /* a down slot has no pid, no descriptors: "-" */
        ctl_figure(slot, sizeof(slot), ctl_int(w, "slot"), 3);
        ctl_figure(pid, sizeof(pid), ctl_int(w, "pid"), 7);
        ctl_figure(fds, sizeof(fds), ctl_int(w, "fds"), 4);
        ctl_figure(held, sizeof(held), ctl_int(w, "held"), 4);
        ctl_figure(jobs, sizeof(jobs), ctl_worker_jobs(w), 6);
        ctl_figure(restarts, sizeof(restarts), ctl_int(w, "restarts"), 3);

        line(scr, 0, "%-9.9s %-9.9s %3s %7s %-8.8s %6s %4s %4s "
             "%4s %6s %3s %6s", ctl_text(w, "node"), ctl_text(w, "queue"),
             slot, pid, ctl_text(w, "state"), rss, fds, cpu, held, jobs,
             restarts, up);
    }
}


/* One frame; returns -1 when Redis did not answer. */
static int
draw(ctl_t *ctl, screen_t *scr, const char *sort)
{
    char       clock[16];
    time_t     now = time(NULL);
    json_t    *all;
    struct tm  tm;

    /* room for the workers: what the header and the queues leave */
    all = ctl_nodes(ctl, sort, scr->batch ? 0 : 500);
    if (all == NULL) {
        return -1;
    }

    localtime_r(&now, &tm);
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);

    scr->row = 0;
    line(scr, 0, "offload top - %s  nodes %zu  workers %lld  redis %s",
         clock, json_array_size(json_object_get(all, "nodes")),
         ctl_int(all, "workers_total"), ctl->redis_name);
    line(scr, 0, "%s", "");
    draw_queues(scr, json_object_get(all, "queues"));
    line(scr, 0, "%s", "");
    draw_workers(scr, json_object_get(all, "workers"));

    if (!scr->batch) {
        clrtobot();
        mvprintw(scr->rows, 0, "sort: %-9s keys: m memory  c cpu  h held  "
                 "r restarts  j jobs  q quit", sort);
        clrtoeol();
        refresh();
    }

    json_decref(all);
    return 0;
}


static const char *
sort_of_key(int key)
{
    int  i;

    for (i = 0; sort_keys[i].key; i++) {
        if (sort_keys[i].key == key) {
            return sort_keys[i].sort;
        }
    }

    return NULL;
}


static int
valid_sort(const char *sort)
{
    int  i;

    for (i = 0; sort_keys[i].key; i++) {
        if (strcmp(sort_keys[i].sort, sort) == 0) {
            return 1;
        }
    }

    return 0;
}


/* frames: how many to show, each for delay_ms (0: until 'q'), as top's
 * -n without -b */
static int
interactive(ctl_t *ctl, const char *sort, int delay_ms, int frames)
{
    int          key, rc = CTL_OK, shown = 0;
    int64_t      next = 0;
    screen_t     scr;
    const char  *s;

    if (initscr() == NULL) {
        fprintf(stderr, "offloadctl top: cannot use this terminal\n");
        return CTL_FAIL;
    }

    cbreak();
    noecho();
    curs_set(0);
    timeout(100);

    memset(&scr, 0, sizeof(scr));

    for ( ;; ) {
        if (offload_mono_us() >= next) {
            if (frames > 0 && shown++ == frames) {
                break;
            }
            scr.rows = LINES - 1;
            if (draw(ctl, &scr, sort) != 0) {
                rc = CTL_FAIL;
                break;
            }
            next = offload_mono_us() + (int64_t) delay_ms * 1000;
        }

        key = getch();
        if (key == 'q' || key == 'Q') {
            break;
        }

        s = sort_of_key(key);
        if (s != NULL) {
            sort = s;
            next = 0;               /* redraw now */
        }
    }

    endwin();
    return rc;
}


int
ctl_top(ctl_t *ctl, int argc, char **argv)
{
    int          opt, batch = 0, frames = 0, delay_ms = 1000, i;
    char        *end;
    double       seconds;
    screen_t     scr;
    const char  *sort = "memory";

    optind = 1;
    while ((opt = getopt(argc, argv, "+bn:d:s:")) != -1) {
        switch (opt) {
        case 'b':
            batch = 1;
            break;
        case 'n':
            if (ctl_count(argv[0], 'n', optarg, &frames) != 0) {
                return CTL_USAGE;
            }
            if (frames < 1) {
                return ctl_usage_error(argv[0], "-n wants 1 frame or more");
            }
            break;
        case 'd':
            seconds = strtod(optarg, &end);
            if (end == optarg || *end != '\0'
                || !(seconds >= 0.1 && seconds <= 3600))
            {
                return ctl_usage_error(argv[0], "-d wants seconds, from 0.1 "
                                       "to 3600, not \"%s\"", optarg);
            }
            delay_ms = (int) (seconds * 1000);
            break;
        case 's':
            sort = optarg;
            break;
        default:
            return CTL_USAGE;
        }
    }

    if (optind != argc || !valid_sort(sort)) {
        return ctl_usage_error(argv[0], "wants [-b] [-n frames] [-d seconds] "
                               "[-s memory|cpu|queue|restarts|jobs]");
    }

    /* a pipe or a file gets frames, not a terminal's escape sequences */
    if (!batch && isatty(STDOUT_FILENO)) {
        return interactive(ctl, sort, delay_ms, frames);
    }

    if (frames == 0) {
        frames = 1;
    }

    ctl_tty_guard();

    memset(&scr, 0, sizeof(scr));
    scr.batch = 1;

    for (i = 0; i < frames; i++) {
        if (i > 0) {
            usleep((useconds_t) delay_ms * 1000);
            printf("\n");
        }
        if (draw(ctl, &scr, sort) != 0) {
            return CTL_FAIL;
        }
    }

    return CTL_OK;
}
