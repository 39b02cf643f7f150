/* An exec run's output, line by line: a reader task per pipe logs each
 * line as an `output` record, reads to the pipe's end, and waits for room
 * in the log before it reads more (so a slow sink blocks the job, not the
 * daemon's memory). A line too long for one record goes in several, each
 * saying which part it is. A task's output budget (output_rate,
 * output_burst) lets through that many records and counts the rest, which
 * are still read: a chatty job neither blocks nor crowds the daemon's own
 * records out of the sink. With output = discard the pipes are read and
 * nothing is logged. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_output.h"

/* After the run's exit, pipes that stay silent this long while nothing
 * waits for the sink are held open by something else (a process the run
 * left behind): the run does not wait for them. */
#define DRAIN_OUTPUT EVT_SEC(1)
/* Bytes read at once; a line longer than this goes out in parts as it
 * comes. */
#define READ_MAX (16 * 1024)
/* Records over the budget are reported at most this often. */
#define SUPPRESSED_REPORT_EVERY EVT_SEC(1)

/* A token bucket: `rate` records a second, up to `burst` at once. */
struct budget {
        double rate;            /* 0: no budget */
        double burst;
        double tokens;
        int64_t filled_at;      /* when tokens was brought up to date */
        unsigned long long records, bytes; /* suppressed since the last report */
        int64_t report_at;      /* when they are reported; 0: none pending */
};

/* What the run and its readers share: the readers may outlive the run's
 * task (a forced cancel ends it while they still have to run once), so the
 * last one frees it. */
struct evd_output {
        evt_group *group;
        unsigned refs;
        unsigned long long reads;       /* reads that got bytes, so far */
        unsigned sink_waits;            /* readers waiting for room in the log */
        evd_log *log;
        bool discard;                   /* output = discard */
        struct budget budget;           /* shared by both pipes */
        char name[];                    /* the job's */
};

struct reader {
        evd_output *out;
        evd_log *log;
        int fd;                 /* the pipe's read end */
        const char *stream;     /* "stdout", "stderr" */
        pid_t pid;
        unsigned part;          /* records of the current line so far */
        size_t len;             /* bytes in buf */
        char buf[READ_MAX];
        char name[];            /* the job's */
};

static void output_unref(evd_output *o) {
        if (--o->refs == 0)
                free(o);
}

/* Whether one more record of `bytes` fits the budget; if not, it is
 * counted, to be reported. */
static bool budget_admit(evd_output *o, size_t bytes) {
        struct budget *b = &o->budget;
        int64_t now;

        if (b->rate <= 0)
                return true;
        now = evt_time_now();
        b->tokens += (double) (now - b->filled_at) * b->rate / (double) EVT_SEC(1);
        if (b->tokens > b->burst)
                b->tokens = b->burst;
        b->filled_at = now;
        if (b->tokens >= 1) {
                b->tokens -= 1;
                return true;
        }
        b->records++;
        b->bytes += bytes;
        if (b->report_at == 0)
                b->report_at = now + SUPPRESSED_REPORT_EVERY;
        return false;
}

/* One `suppressed` record for what the budget held back since the last;
 * with `due`, only once its interval has passed. */
static void budget_report(evd_output *o, bool due) {
        struct budget *b = &o->budget;

        if (b->records == 0 || (due && evt_time_now() < b->report_at))
                return;
        evd_log_emit(o->log, LOG_WARNING, EVD_EV_SUPPRESSED, o->name,
                     EVD_FIELDS(EVD_NUM("records", b->records), EVD_NUM("bytes", b->bytes),
                                EVD_NUM("output_rate", b->rate), EVD_NUM("output_burst", b->burst)),
                     "%llu output records (%llu bytes) over the budget of %g a second suppressed", b->records,
                     b->bytes, b->rate);
        b->records = b->bytes = 0;
        b->report_at = 0;
}

size_t evd_output_escape(const char *p, size_t n, char *safe, size_t max, size_t *ret_used) {
        static const char hex[] = "0123456789abcdef";
        size_t k = 0, i = 0;

        while (i < n) {
                const unsigned char *s = (const unsigned char *) p + i;
                size_t u = s[0] >= 0x80 ? evd_utf8_len(s, n - i) : 0, m;
                /* C1 controls (U+0080 to U+009F) steer terminals as C0 ones do. */
                bool c1 = u == 2 && s[0] == 0xc2 && s[1] < 0xa0;
                const char *src = (const char *) s;
                char esc[8];

                if (u > 0 && !c1) {
                        m = u;
                } else if (s[0] == '\\') {
                        src = "\\\\";
                        m = 2;
                } else if (s[0] == '\t' || (s[0] >= 0x20 && s[0] < 0x7f)) {
                        m = 1;
                } else {
                        u = c1 ? 2 : 1;
                        for (size_t j = 0; j < u; j++)
                                memcpy(esc + 4 * j, (char[]) { '\\', 'x', hex[s[j] >> 4], hex[s[j] & 15] }, 4);
                        src = esc;
                        m = 4 * u;
                }
                if (k + m > max)
                        break;
                memcpy(safe + k, src, m);
                k += m;
                i += u > 0 ? u : 1;
        }
        safe[k] = '\0';
        if (ret_used)
                *ret_used = i;
        return k;
}

/* Text of a line (or of its start, when !last: more follows), as one
 * record or, if it does not fit, several: each then says its part, and
 * whether the line continues after it. stderr's as warnings. */
static void emit_text(struct reader *rd, const char *p, size_t n, bool last) {
        int priority = rd->stream[3] == 'e' ? LOG_WARNING : LOG_INFO;

        do {
                char safe[EVD_OUTPUT_RECORD_MAX + 1];
                size_t used;
                bool more;

                evd_output_escape(p, n, safe, EVD_OUTPUT_RECORD_MAX, &used);
                p += used;
                n -= used;
                more = n > 0 || !last;
                if (!budget_admit(rd->out, used)) {
                        rd->part += more || rd->part > 0;
                        continue;
                }
                if (!more && rd->part == 0) {
                        evd_log_emit(rd->log, priority, EVD_EV_OUTPUT, rd->name,
                                     EVD_FIELDS(EVD_STR("stream", rd->stream), EVD_NUM("pid", rd->pid)), "%s",
                                     safe);
                        break;
                }
                rd->part++;
                evd_log_emit(rd->log, priority, EVD_EV_OUTPUT, rd->name,
                             EVD_FIELDS(EVD_STR("stream", rd->stream), EVD_NUM("pid", rd->pid),
                                        EVD_NUM("part", rd->part), EVD_NUM("continued", more)),
                             "%s%s", safe, evd_log_get_target(rd->log) == EVD_LOG_CONSOLE && more ? " (continued)" : "");
        } while (n > 0);
        if (last)
                rd->part = 0;
}

/* Bytes at the end of buf that start a UTF-8 character not complete yet. */
static size_t utf8_tail(const char *buf, size_t len) {
        for (size_t i = 1; i <= 3 && i <= len; i++) {
                unsigned char c = (unsigned char) buf[len - i];

                if ((c & 0xc0) == 0x80)
                        continue;
                if (c >= 0xc0 && (size_t) (c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2) > i)
                        return i;
                break;
        }
        return 0;
}

/* Logs the whole lines in buf, and, when it is full, the start of the line
 * it holds; at the end (eof), the rest. In as few writes as possible. */
static void process(struct reader *rd, bool eof) {
        char *start = rd->buf, *nl;
        size_t len = rd->len;

        if (rd->out->discard) {
                rd->len = 0;
                return;
        }
        evd_log_hold(rd->log);
        while ((nl = memchr(start, '\n', len))) {
                emit_text(rd, start, (size_t) (nl - start), true);
                len -= (size_t) (nl - start) + 1;
                start = nl + 1;
        }
        if (eof && len > 0) {
                emit_text(rd, start, len, true);
                len = 0;
        } else if (start == rd->buf && len == sizeof(rd->buf)) {
                size_t keep = utf8_tail(start, len);

                emit_text(rd, start, len - keep, false);
                start += len - keep;
                len = keep;
        }
        evd_log_release(rd->log);
        memmove(rd->buf, start, len);
        rd->len = len;
}

/* After a forced cancel: what is in the pipe now is the run's, and is
 * logged without waiting (at most the pipe's size, however fast a writer
 * still running is). */
static void read_rest(struct reader *rd) {
        int cap = fcntl(rd->fd, F_GETPIPE_SZ);
        size_t left = cap > 0 ? (size_t) cap : READ_MAX;

        while (left > 0) {
                size_t room = sizeof(rd->buf) - rd->len;
                ssize_t n = read(rd->fd, rd->buf + rd->len, room < left ? room : left);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                rd->len += (size_t) n;
                left -= (size_t) n;
                process(rd, false);
        }
}

static int reader_fn(void *arg) {
        struct reader *rd = arg;
        bool eof = false;
        int r;

        for (;;) {
                ssize_t n;

                int64_t report_at = rd->out->budget.report_at;

                rd->out->sink_waits++;
                r = rd->out->discard ? 0 : evd_log_wait_room(rd->log);
                rd->out->sink_waits--;
                if (r < 0)
                        break;
                r = evt_fd_wait(rd->fd, EVT_READ, report_at ? evt_deadline_at(report_at) : EVT_FOREVER, NULL);
                if (r == -ETIMEDOUT) {
                        budget_report(rd->out, true);
                        continue;
                }
                if (r < 0)
                        break;
                n = read(rd->fd, rd->buf + rd->len, sizeof(rd->buf) - rd->len);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n <= 0) {
                        eof = true;
                        break;
                }
                rd->out->reads++;
                rd->len += (size_t) n;
                process(rd, false);
                budget_report(rd->out, true);
        }
        if (!eof)
                read_rest(rd);
        process(rd, true);
        close(rd->fd);
        output_unref(rd->out);
        free(rd);
        return r;
}

static void reader_start(evd_output *o, const evd_job *job, int fd, const char *stream, const evt_task_opts *opts) {
        size_t len = strlen(job->conf.name);
        struct reader *rd = malloc(sizeof(*rd) + len + 1);
        char task_name[128];
        evt_task_opts topts = *opts;

        if (!rd || !o->group) {
                free(rd);
                close(fd);
                return;
        }
        rd->out = o;
        rd->log = job->log;
        rd->fd = fd;
        rd->stream = stream;
        rd->pid = job->pid;
        rd->part = 0;
        rd->len = 0;
        memcpy(rd->name, job->conf.name, len + 1);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        /* "NAME/stdout" in the task table and forced records. Shielded:
         * a shutdown's cancel does not cut the output of a run that is
         * being stopped; the run ends its readers itself. */
        snprintf(task_name, sizeof(task_name), "%s/%s", job->conf.name, stream);
        topts.name = task_name;
        topts.flags |= EVT_TASK_SHIELDED;
        o->refs++;
        if (evt_group_spawn(o->group, reader_fn, rd, &topts, NULL) < 0) {
                o->refs--;
                close(fd);
                free(rd);
        }
}

evd_output *evd_output_start(const evd_job *job, int out_fd, int err_fd, const evt_task_opts *opts) {
        const evd_task_conf *c = &job->conf;
        evd_output *o = calloc(1, sizeof(*o) + strlen(c->name) + 1);

        if (!o || evt_group_new(job->loop, &o->group) < 0) {
                free(o);
                close(out_fd);
                close(err_fd);
                return NULL;
        }
        o->refs = 1;
        o->log = job->log;
        o->discard = c->output == EVD_OUTPUT_DISCARD;
        o->budget.rate = c->output_rate;
        o->budget.burst = c->output_burst ? (double) c->output_burst : c->output_rate < 1 ? 1 : c->output_rate;
        o->budget.tokens = o->budget.burst;
        o->budget.filled_at = evt_time_now();
        strcpy(o->name, c->name);
        reader_start(o, job, out_fd, "stdout", opts);
        reader_start(o, job, err_fd, "stderr", opts);
        return o;
}

int evd_output_finish(evd_output *o) {
        unsigned long long seen;
        int r;

        if (!o)
                return 0;
        evt_shield_push();
        do {
                seen = o->reads;
                r = evt_group_wait(o->group, evt_deadline_in(DRAIN_OUTPUT));
        } while (r == -ETIMEDOUT && (o->reads != seen || o->sink_waits > 0));
        if (r < 0)
                evt_group_cancel(o->group, EVT_CANCEL_FORCE);
        evt_group_wait(o->group, EVT_FOREVER);
        budget_report(o, false);
        evt_shield_pop();
        evt_group_free(o->group);
        output_unref(o);
        return r;
}
