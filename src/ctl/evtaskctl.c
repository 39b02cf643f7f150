/* evtaskctl: one request to a running evtaskd over its control socket, its
 * answer as a table or a message (or, with --json, as the daemon sent it),
 * and an exit status a script can test. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_path.h"
#include "util.h"
#include "values.h"

/* The exit statuses (evtaskctl(1)). */
enum {
        EXIT_DONE = 0,
        EXIT_REFUSED = 1,       /* refused or failed; for health: not ready */
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,   /* no daemon at the socket */
        EXIT_NO_ANSWER = 4,     /* the daemon took the request, no answer in time */
};

#define REPLY_MAX (16 * 1024 * 1024)

struct opts {
        const char *socket;     /* NULL: the default place */
        bool json;
        int64_t timeout;        /* for the answer */
        bool force;
        bool stacks;            /* dump --stacks */
        const char *drain_timeout;
};

/* ---- the verbs: their arguments and how their answers read ---- */

typedef int show_fn(json_t *reply);

static int show_message(json_t *reply) {
        printf("%s\n", json_string_value(json_object_get(reply, "message")));
        return EXIT_DONE;
}

static bool colour;

static const char *state_colour(const char *state) {
        static const struct {
                const char *state, *sgr;
        } colours[] = {
                { "running", "32" }, { "waiting", "36" }, { "paused", "33" }, { "suspended", "33" },
                { "draining", "31" }, { "done", "2" },
        };

        for (size_t i = 0; colour && i < ARRAY_SIZE(colours); i++)
                if (strcmp(state, colours[i].state) == 0)
                        return colours[i].sgr;
        return NULL;
}

static void age_text(long long ms, char *buf, size_t len) {
        if (ms < 10000)
                snprintf(buf, len, "%.1fs", (double) ms / 1000);
        else if (ms < 3600000)
                snprintf(buf, len, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
        else
                snprintf(buf, len, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
}

/* The daemon in one line, then one aligned row per task. */
static int show_status(json_t *reply) {
        json_t *dmn = json_object_get(reply, "daemon"), *tasks = json_object_get(reply, "tasks"), *t;
        int w_name = 4, w_state = 5, w_kind = 4;
        size_t i;

        printf("evtaskd pid %lld, %s%s, %lld tasks, config %s\n",
               (long long) json_integer_value(json_object_get(dmn, "pid")),
               json_string_value(json_object_get(dmn, "phase")),
               json_is_true(json_object_get(dmn, "paused")) ? ", paused" : "",
               (long long) json_integer_value(json_object_get(dmn, "tasks")),
               json_string_value(json_object_get(dmn, "config")));
        json_array_foreach(tasks, i, t) {
                const char *kind = json_string_value(json_object_get(t, "kind"));
                int n = (int) strlen(json_string_value(json_object_get(t, "name")));

                w_name = n > w_name ? n : w_name;
                n = (int) strlen(json_string_value(json_object_get(t, "state")));
                w_state = n > w_state ? n : w_state;
                n = kind ? (int) strlen(kind) : 0;
                w_kind = n > w_kind ? n : w_kind;
        }
        printf("%-*s  %-*s  %-*s  %-8s  %-8s  %8s  %5s  %8s  %4s  %7s  %s\n", w_name, "NAME", w_state, "STATE",
               w_kind, "KIND", "SHIELD", "PAUSABLE", "AGE", "RUNS", "RESTARTS", "EXIT", "PID", "DESCRIPTION");
        json_array_foreach(tasks, i, t) {
                const char *state = json_string_value(json_object_get(t, "state"));
                const char *kind = json_string_value(json_object_get(t, "kind"));
                const char *desc = json_string_value(json_object_get(t, "description"));
                const char *next_run = json_string_value(json_object_get(t, "next_run"));
                const char *waits = json_string_value(json_object_get(t, "waiting_for"));
                char why[128];
                const char *sgr = state_colour(state);
                json_t *pid = json_object_get(t, "pid"), *code = json_object_get(t, "last_exit_code");
                char age[32], pidtext[16] = "-", exit_text[16] = "-";

                age_text(json_integer_value(json_object_get(t, "age_ms")), age, sizeof(age));
                if (pid)
                        snprintf(pidtext, sizeof(pidtext), "%lld", (long long) json_integer_value(pid));
                if (code)
                        snprintf(exit_text, sizeof(exit_text), "%lld", (long long) json_integer_value(code));
                /* Why a task has not started says more than what it is for. */
                if (waits) {
                        snprintf(why, sizeof(why), "waiting for %s to be ready", waits);
                        desc = why;
                }
                printf("%-*s  %s%s%s%-*s%s  %-*s  %-8s  %-8s  %8s  %5lld  %8lld  %4s  %7s  %s%s%s%s\n", w_name,
                       json_string_value(json_object_get(t, "name")), sgr ? "\033[" : "", sgr ? sgr : "",
                       sgr ? "m" : "", w_state, state, sgr ? "\033[0m" : "", w_kind, kind ? kind : "-",
                       json_is_true(json_object_get(t, "shielded")) ? "yes" : "no",
                       json_is_true(json_object_get(t, "pausable")) ? "yes" : "no", age,
                       (long long) json_integer_value(json_object_get(t, "runs")),
                       (long long) json_integer_value(json_object_get(t, "restarts")), exit_text, pidtext,
                       desc ? desc : "", next_run && desc ? " " : "", next_run ? "next run " : "",
                       next_run ? next_run : "");
        }
        return EXIT_DONE;
}

static void duration_text(json_t *ms, char *buf, size_t len) {
        if (ms)
                age_text(json_integer_value(ms), buf, len);
        else
                snprintf(buf, len, "-");
}

/* dump --stacks: a task's frames under its row, innermost first. */
static void show_stack(json_t *stack) {
        json_t *frame;
        size_t i;

        json_array_foreach(stack, i, frame)
                printf("    #%-2zu %s\n", i, json_string_value(frame));
        if (stack)
                putchar('\n');
}

/* Every task with what it waits on, then the blocking calls. */
static int show_dump(json_t *reply) {
        json_t *tasks = json_object_get(reply, "tasks"), *calls = json_object_get(reply, "calls"), *t;
        int w_name = 4;
        size_t i;

        json_array_foreach(tasks, i, t) {
                int n = (int) strlen(json_string_value(json_object_get(t, "name")));

                w_name = n > w_name ? n : w_name;
        }
        printf("%-*s  %-9s  %-24s  %8s  %8s\n", w_name, "TASK", "STATE", "WAITS ON", "FOR", "DEADLINE");
        json_array_foreach(tasks, i, t) {
                const char *what = json_string_value(json_object_get(t, "waits_on"));
                json_t *arg = json_object_get(t, "arg"), *joins = json_object_get(t, "joins");
                char on[64], waited[32], deadline[32];

                if (!what)
                        snprintf(on, sizeof(on), "-");
                else if (joins)
                        snprintf(on, sizeof(on), "%s %s", what, json_string_value(joins));
                else if (arg)
                        snprintf(on, sizeof(on), "%s %lld", what, (long long) json_integer_value(arg));
                else
                        snprintf(on, sizeof(on), "%s", what);
                duration_text(json_object_get(t, "waiting_ms"), waited, sizeof(waited));
                duration_text(json_object_get(t, "deadline_in_ms"), deadline, sizeof(deadline));
                printf("%-*s  %-9s  %-24s  %8s  %8s\n", w_name, json_string_value(json_object_get(t, "name")),
                       json_string_value(json_object_get(t, "state")), on, waited, deadline);
                show_stack(json_object_get(t, "stack"));
        }
        if (json_array_size(calls) > 0)
                printf("\nBLOCKING CALL OF  STATE    AGE  RUNNING\n");
        json_array_foreach(calls, i, t) {
                char age[32], running[32];

                duration_text(json_object_get(t, "age_ms"), age, sizeof(age));
                duration_text(json_object_get(t, "running_ms"), running, sizeof(running));
                printf("%-16s  %-7s  %5s  %7s%s\n", json_string_value(json_object_get(t, "task")),
                       json_string_value(json_object_get(t, "state")), age, running,
                       json_is_true(json_object_get(t, "awaited")) ? "" : "  (given up)");
        }
        return EXIT_DONE;
}

static int show_health(json_t *reply) {
        bool ready = json_is_true(json_object_get(reply, "ready"));

        printf("%s (%s%s)\n", ready ? "ready" : "not ready", json_string_value(json_object_get(reply, "phase")),
               json_is_true(json_object_get(reply, "paused")) ? ", paused" : "");
        return ready ? EXIT_DONE : EXIT_REFUSED;
}

static int show_reload(json_t *reply) {
        printf("reloaded: %lld added, %lld removed, %lld changed, %lld unchanged\n",
               (long long) json_integer_value(json_object_get(reply, "added")),
               (long long) json_integer_value(json_object_get(reply, "removed")),
               (long long) json_integer_value(json_object_get(reply, "changed")),
               (long long) json_integer_value(json_object_get(reply, "unchanged")));
        return EXIT_DONE;
}

/* The verbs: the task names they take (min, max; -1: any number), the
 * words after them (signal's SIG), and how the answer reads. */
static const struct verb {
        const char *name;
        int min_tasks, max_tasks;
        const char *extra;      /* the name of one more word, or NULL */
        show_fn *show;
        const char *usage;
} verbs[] = {
        { "status", 0, -1, NULL, show_status,
          "status [TASK...]        each task's state, kind, age, runs, restarts, last exit; the phase" },
        { "health", 0, 0, NULL, show_health,
          "health                  exit 0 when ready, 1 when not (draining), 4 when\n"
          "                          the loop does not answer within --timeout" },
        { "dump", 0, 0, NULL, show_dump,
          "dump [--stacks]         every task with what it waits on and for how long;\n"
          "                          the blocking calls in flight; --stacks: each task's\n"
          "                          backtrace" },
        { "pause", 0, -1, NULL, show_message,
          "pause [TASK...]         pause every pausable task (as SIGINT), or suspend the\n"
          "                          tasks named: not one step, their processes stopped" },
        { "resume", 0, -1, NULL, show_message,
          "resume [TASK...]        resume them (as the next SIGINT), or the tasks named" },
        { "cancel", 1, 1, NULL, show_message, "cancel TASK [--force]   cancel a task; --force pierces its shield" },
        { "stop", 1, 1, NULL, show_message,
          "stop TASK               cancel a task; it is not restarted until 'start'" },
        { "start", 1, 1, NULL, show_message,
          "start TASK              start a task that has ended (stopped, finished)" },
        { "restart", 1, 1, NULL, show_message,
          "restart TASK            cancel a task and start it anew once it has ended" },
        { "run", 1, 1, NULL, show_message, "run TASK                start an exec task's next run now" },
        { "signal", 1, 1, "SIG", show_message,
          "signal TASK SIG         send SIG to every process of an exec task's run" },
        { "reload", 0, 0, NULL, show_reload,
          "reload                  re-read the config; answers what changed, or the error" },
        { "shutdown", 0, 0, NULL, show_message,
          "shutdown [--drain-timeout D]\n"
          "                          graceful shutdown (as SIGTERM), draining for D" },
};

static void usage(FILE *f) {
        fputs("Usage: evtaskctl [--socket PATH] [--json] [--timeout D] VERB [ARG]...\n"
              "Ask a running evtaskd over its control socket.\n"
              "\n"
              "Options:\n"
              "  -s, --socket PATH       the daemon's control socket (default: $RUNTIME_DIRECTORY/control,\n"
              "                          /run/evtaskd/control for root, $XDG_RUNTIME_DIR/evtaskd/control)\n"
              "  -j, --json              print the daemon's JSON answer as it came\n"
              "  -t, --timeout D         wait at most D for the answer (default 10s)\n"
              "  -f, --force             cancel: pierce the task's shield\n"
              "  -d, --drain-timeout D   shutdown: drain for D instead of drain_timeout\n"
              "  -S, --stacks            dump: each parked task's backtrace\n"
              "  -h, --help              show this help and exit\n"
              "  -V, --version           show the version and exit\n"
              "\n"
              "Verbs:\n",
              f);
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                fprintf(f, "  %s\n", verbs[i].usage);
        fputs("\n"
              "Exit status:\n"
              "  0  done (health: ready)       1  refused or failed (health: not ready)\n"
              "  2  usage error                3  cannot reach the daemon\n"
              "  4  the daemon took the request but did not answer in time\n",
              f);
}

/* ---- talking to the daemon ---- */

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...) {
        va_list ap;

        fputs("evtaskctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return status;
}

static int64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sends the request line and reads the reply line into *ret. An exit
 * status on failure, said on stderr. */
static int exchange(const char *path, const char *request, int64_t timeout, char **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int64_t deadline = now_ns() + timeout;
        size_t len = 0, cap = 4096;
        char *buf;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return fail(EXIT_USAGE, "%s: too long for a socket", path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;

                if (fd >= 0)
                        close(fd);
                return fail(EXIT_UNREACHABLE, "cannot reach evtaskd at %s: %s%s", path, strerror(e),
                            e == ENOENT || e == ECONNREFUSED ? " (is it running? --socket names another place)" : "");
        }
        if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 || shutdown(fd, SHUT_WR) < 0) {
                close(fd);
                return fail(EXIT_UNREACHABLE, "cannot send to evtaskd at %s: %s", path, strerror(errno));
        }
        buf = malloc(cap);
        while (buf) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - now_ns();
                ssize_t n;

                if (left <= 0 || poll(&pfd, 1, (int) (left / 1000000) + 1) == 0) {
                        free(buf);
                        close(fd);
                        return fail(EXIT_NO_ANSWER, "evtaskd at %s took the request but did not answer in time",
                                    path);
                }
                if (len + 1 >= cap) {
                        char *more = cap < REPLY_MAX ? realloc(buf, cap * 2) : NULL;

                        if (!more)
                                break;
                        buf = more;
                        cap *= 2;
                }
                n = read(fd, buf + len, cap - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        close(fd);
        if (!buf || len == 0) {
                free(buf);
                return fail(EXIT_UNREACHABLE, "evtaskd at %s closed the connection without an answer", path);
        }
        buf[len] = '\0';
        *ret = buf;
        return EXIT_DONE;
}

static const struct verb *verb_find(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/* The request of verb v with its words (argv after the verb). */
static json_t *request_new(const struct verb *v, int argc, char **argv, const struct opts *o) {
        json_t *req = json_pack("{s:i, s:s}", "version", EVD_CONTROL_VERSION, "verb", v->name);
        int n_tasks = argc - (v->extra ? 1 : 0);
        json_t *tasks = json_array();

        for (int i = 0; i < n_tasks; i++)
                json_array_append_new(tasks, json_string(argv[i]));
        json_object_set_new(req, "tasks", tasks);
        if (v->extra)
                json_object_set_new(req, "signal", json_string(argv[argc - 1]));
        if (o->force)
                json_object_set_new(req, "force", json_true());
        if (o->drain_timeout)
                json_object_set_new(req, "drain_timeout", json_string(o->drain_timeout));
        if (o->stacks)
                json_object_set_new(req, "stacks", json_true());
        return req;
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
                { "drain-timeout", required_argument, NULL, 'd' }, { "stacks", no_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { 0 },
        };
        struct opts o = { .timeout = (int64_t) 10 * 1000000000 };
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)], *request, *answer = NULL;
        const struct verb *v;
        json_error_t jerr;
        json_t *reply;
        int c, n_words, status;

        while ((c = getopt_long(argc, argv, "s:jt:fd:ShV", longopts, NULL)) != -1) {
                switch (c) {
                case 's':
                        o.socket = optarg;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 't':
                        if (evd_parse_duration(optarg, &o.timeout) < 0 || o.timeout <= 0)
                                return fail(EXIT_USAGE, "--timeout: '%s' is not a duration above 0 (e.g. 2s)",
                                            optarg);
                        break;
                case 'f':
                        o.force = true;
                        break;
                case 'd':
                        o.drain_timeout = optarg;
                        break;
                case 'S':
                        o.stacks = true;
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_DONE;
                case 'V':
                        printf("evtaskctl %s\n", EVTASK_VERSION);
                        return EXIT_DONE;
                default:
                        fputs("Try 'evtaskctl --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return fail(EXIT_USAGE, "a verb is needed (status, health, pause, ...; see --help)");
        v = verb_find(argv[optind]);
        if (!v)
                return fail(EXIT_USAGE, "unknown verb '%s' (see --help)", argv[optind]);
        n_words = argc - optind - 1 - (v->extra ? 1 : 0);
        if (n_words < v->min_tasks || (v->max_tasks >= 0 && n_words > v->max_tasks))
                return fail(EXIT_USAGE, "usage: evtaskctl %s", v->usage);
        if ((o.force && strcmp(v->name, "cancel") != 0) || (o.drain_timeout && strcmp(v->name, "shutdown") != 0) ||
            (o.stacks && strcmp(v->name, "dump") != 0))
                return fail(EXIT_USAGE, "--force is for cancel, --drain-timeout for shutdown, --stacks for dump");
        if (!o.socket) {
                if (evd_control_default_path(path, sizeof(path)) < 0)
                        return fail(EXIT_UNREACHABLE,
                                    "no default control socket (no $XDG_RUNTIME_DIR): use --socket");
                /* A user's shell has no daemon of its own: the system's. */
                if (geteuid() != 0 && access(path, F_OK) < 0)
                        snprintf(path, sizeof(path), "/run/evtaskd/control");
                o.socket = path;
        }
        colour = !o.json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");

        reply = request_new(v, argc - optind - 1, argv + optind + 1, &o);
        answer = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (!answer || asprintf(&request, "%s\n", answer) < 0)
                return fail(EXIT_REFUSED, "out of memory");
        free(answer);
        answer = NULL;
        status = exchange(o.socket, request, o.timeout, &answer);
        free(request);
        if (status != EXIT_DONE)
                return status;
        reply = json_loads(answer, 0, &jerr);
        if (!reply || !json_is_object(reply)) {
                free(answer);
                json_decref(reply);
                return fail(EXIT_REFUSED, "the daemon's answer is not JSON: %s", jerr.text);
        }
        if (!json_is_true(json_object_get(reply, "ok")))
                status = fail(EXIT_REFUSED, "%s", json_string_value(json_object_get(reply, "error")));
        if (o.json) {
                fputs(answer, stdout);
                /* health's status says ready or not, in JSON too */
                if (status == EXIT_DONE && v->show == show_health && !json_is_true(json_object_get(reply, "ready")))
                        status = EXIT_REFUSED;
        } else if (status == EXIT_DONE) {
                status = v->show(reply);
        }
        free(answer);
        json_decref(reply);
        return status;
}
