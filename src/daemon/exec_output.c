/* An exec run's output, line by line: a reader task per pipe logs each
 * line as an `output` record; a line longer than EVD_OUTPUT_LINE_MAX goes
 * in pieces. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_output.h"

/* A reader task's own state: a forced cancel may end the run while its
 * readers still have to run once, so they share nothing with it. Each
 * closes its pipe and frees this at its end. */
struct reader {
        evd_log *log;
        int fd;                 /* the pipe's read end */
        const char *stream;     /* "stdout", "stderr" */
        pid_t pid;
        char name[];            /* the job's */
};

size_t evd_output_escape(const char *p, size_t n, char *safe) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) p[i];
                size_t u = c >= 0x80 ? evd_utf8_len((const unsigned char *) p + i, n - i) : 0;

                if (u > 0) {
                        memcpy(safe + k, p + i, u);
                        k += u;
                        i += u - 1;
                } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
                        safe[k++] = (char) c;
                } else {
                        static const char hex[] = "0123456789abcdef";

                        safe[k++] = '\\';
                        safe[k++] = 'x';
                        safe[k++] = hex[c >> 4];
                        safe[k++] = hex[c & 15];
                }
        }
        safe[k] = '\0';
        return k;
}

/* One line: stderr's as warnings. */
static void emit_line(struct reader *rd, const char *p, size_t n) {
        char safe[EVD_OUTPUT_LINE_MAX * 4 + 1];

        evd_output_escape(p, n, safe);
        evd_log_emit(rd->log, rd->stream[3] == 'e' ? LOG_WARNING : LOG_INFO, EVD_EV_OUTPUT, rd->name,
                     EVD_FIELDS(EVD_STR("stream", rd->stream), EVD_NUM("pid", rd->pid)), "%s", safe);
}

static int reader_fn(void *arg) {
        struct reader *rd = arg;
        char buf[EVD_OUTPUT_LINE_MAX + 1];
        size_t len = 0;
        int r = 0;

        for (;;) {
                ssize_t n;
                char *nl;

                r = evt_fd_wait(rd->fd, EVT_READ, EVT_FOREVER, NULL);
                if (r < 0)
                        break;
                n = read(rd->fd, buf + len, sizeof(buf) - len);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                while ((nl = memchr(buf, '\n', len))) {
                        size_t line = (size_t) (nl - buf);

                        emit_line(rd, buf, line);
                        len -= line + 1;
                        memmove(buf, nl + 1, len);
                }
                /* A long line, in pieces; a line of exactly the limit is
                 * one piece (its newline may be the next byte). */
                if (len > EVD_OUTPUT_LINE_MAX) {
                        emit_line(rd, buf, EVD_OUTPUT_LINE_MAX);
                        len -= EVD_OUTPUT_LINE_MAX;
                        memmove(buf, buf + EVD_OUTPUT_LINE_MAX, len);
                }
        }
        if (len > 0)
                emit_line(rd, buf, len);
        close(rd->fd);
        free(rd);
        return r;
}

void evd_output_reader_start(evt_group *group, const evd_job *job, int fd, const char *stream,
                             const evt_task_opts *opts) {
        size_t len = strlen(job->conf.name);
        struct reader *rd = malloc(sizeof(*rd) + len + 1);
        char task_name[128];
        evt_task_opts o = *opts;

        if (!rd || !group) {
                free(rd);
                close(fd);
                return;
        }
        *rd = (struct reader) { .log = job->log, .fd = fd, .stream = stream, .pid = job->pid };
        memcpy(rd->name, job->conf.name, len + 1);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        /* "NAME/stdout" in the task table and forced records. */
        snprintf(task_name, sizeof(task_name), "%s/%s", job->conf.name, stream);
        o.name = task_name;
        if (evt_group_spawn(group, reader_fn, rd, &o, NULL) < 0) {
                close(fd);
                free(rd);
        }
}

