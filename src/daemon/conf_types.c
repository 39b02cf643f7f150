/* The value types of config keys: one small parser per type, shared by
 * every key of that type, with the message a bad value gets; and how a
 * value is shown in records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "calendar.h"
#include "command.h"
#include "config.h"
#include "http.h"

#define STACK_SIZE_MIN ((size_t) 16 << 10)
#define STACK_SIZE_MAX ((size_t) 1 << 30)
#define SPEED_MIN 0.0001
#define SPEED_MAX 1000
/* The longest duration any key takes: a deadline or a next start of now
 * plus a few of them still fits in int64_t nanoseconds with room to spare. */
#define DURATION_MAX EVD_SEC(366 * 24 * 3600)
#define THREADS_MAX 1024
#define RATE_MAX 1000000 /* records a second: more than a sink takes */
#define MEMORY_MIN ((size_t) 1 << 20)
#define PERCENT_MAX 100000 /* a thousand CPUs */

static const char *const kind_words[] = { EVD_KIND_LIST(EVD_ENUM_NAME) };
static const char *const schedule_words[] = { EVD_SCHEDULE_LIST(EVD_ENUM_NAME) };
static const char *const restart_words[] = { EVD_RESTART_LIST(EVD_ENUM_NAME) };
static const char *const catch_up_words[] = { EVD_CATCH_UP_LIST(EVD_ENUM_NAME) };
const evd_names evd_kind_names = { kind_words, ARRAY_SIZE(kind_words), "kind" };
const evd_names evd_schedule_names = { schedule_words, ARRAY_SIZE(schedule_words), "schedule" };
const evd_names evd_restart_names = { restart_words, ARRAY_SIZE(restart_words), "restart policy" };
const evd_names evd_catch_up_names = { catch_up_words, ARRAY_SIZE(catch_up_words), "catch_up" };
static const char *const sigint_words[] = { EVD_SIGINT_LIST(EVD_ENUM_NAME) };
const evd_names evd_sigint_names = { sigint_words, ARRAY_SIZE(sigint_words), "SIGINT action" };
static const char *const ready_words[] = { EVD_READY_LIST(EVD_ENUM_NAME) };
const evd_names evd_ready_names = { ready_words, ARRAY_SIZE(ready_words), "readiness" };
static const char *const output_words[] = { EVD_OUTPUT_LIST(EVD_ENUM_NAME) };
const evd_names evd_output_names = { output_words, ARRAY_SIZE(output_words), "output mode" };

static int out_of_memory(const evd_key_ctx *ctx) {
        return evd_conf_fail(ctx->error, -ENOMEM, ctx->line, "out of memory");
}

/* ---- numbers and durations ---- */

static int parse_boolean(const evd_key_ctx *ctx, const char *v, void *field) {
        if (evd_parse_bool(v, field) < 0)
                return evd_key_fail(ctx, "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", v);
        return 0;
}

static int parse_duration(const evd_key_ctx *ctx, const char *v, void *field) {
        if (evd_parse_duration(v, field) < 0)
                return evd_key_fail(ctx, "'%s' is not a duration (for example 250ms, 10s, 1.5s, 5min, 1h)", v);
        if (*(int64_t *) field > DURATION_MAX)
                return evd_key_fail(ctx, "%s is out of range (at most 8784h, 366 days)", v);
        return 0;
}

static int parse_positive_duration(const evd_key_ctx *ctx, const char *v, void *field) {
        int r = parse_duration(ctx, v, field);

        if (r == 0 && *(int64_t *) field == 0)
                return evd_key_fail(ctx, "must be more than 0, not %s", v);
        return r;
}

static int parse_stack_size(const evd_key_ctx *ctx, const char *v, void *field) {
        size_t size;

        if (evd_parse_size(v, &size) < 0)
                return evd_key_fail(ctx, "'%s' is not a size (for example 65536, 64K, 1M)", v);
        if (size < STACK_SIZE_MIN || size > STACK_SIZE_MAX)
                return evd_key_fail(ctx, "%s is out of range (16K to 1G)", v);
        *(size_t *) field = size;
        return 0;
}

/* An unsigned integer up to max; `range` says what is allowed. */
static int parse_uint_upto(const evd_key_ctx *ctx, const char *v, uint64_t max, const char *range,
                           uint64_t *ret) {
        int r = evd_parse_uint(v, ret);

        if (r == -EINVAL)
                return evd_key_fail(ctx, "'%s' is not an unsigned integer", v);
        if (r < 0 || *ret > max)
                return evd_key_fail(ctx, "%s is out of range%s", v, range);
        return 0;
}

static int parse_threads(const evd_key_ctx *ctx, const char *v, void *field) {
        uint64_t n;
        int r = parse_uint_upto(ctx, v, THREADS_MAX, " (0 = one per CPU, at most 1024)", &n);

        if (r == 0)
                *(unsigned *) field = (unsigned) n;
        return r;
}

static int parse_count(const evd_key_ctx *ctx, const char *v, void *field) {
        return parse_uint_upto(ctx, v, UINT64_MAX, "", field);
}

static int parse_speed(const evd_key_ctx *ctx, const char *v, void *field) {
        int r = evd_parse_positive(v, SPEED_MAX, field);

        if (r == -EINVAL)
                return evd_key_fail(ctx, "'%s' is not a number", v);
        if (r < 0 || *(double *) field < SPEED_MIN)
                return evd_key_fail(ctx, "%s is out of range (0.0001 to 1000 steps a second)", v);
        return 0;
}

/* N/s or N/min: how many a second. */
static int parse_rate(const evd_key_ctx *ctx, const char *v, void *field) {
        const char *slash = strchr(v, '/');
        char num[32];
        double n, per;

        if (!slash || (size_t) (slash - v) >= sizeof(num) ||
            (strcmp(slash, "/s") != 0 && strcmp(slash, "/min") != 0))
                return evd_key_fail(ctx, "'%s' is not a rate (for example 100/s, 30/min)", v);
        per = slash[1] == 's' ? 1 : 60;
        memcpy(num, v, (size_t) (slash - v));
        num[slash - v] = '\0';
        if (evd_parse_positive(num, RATE_MAX * per, &n) < 0)
                return evd_key_fail(ctx, "'%s' is not a rate from 1/min to 1000000/s", v);
        if (n / per < 1.0 / 60)
                return evd_key_fail(ctx, "%s is out of range (1/min to 1000000/s)", v);
        *(double *) field = n / per;
        return 0;
}

/* Bytes, as a size (K, M, G), at least a megabyte. */
static int parse_memory_size(const evd_key_ctx *ctx, const char *v, void *field) {
        size_t size;

        if (evd_parse_size(v, &size) < 0)
                return evd_key_fail(ctx, "'%s' is not a size (for example 512M, 2G)", v);
        if (size < MEMORY_MIN)
                return evd_key_fail(ctx, "%s is out of range (at least 1M)", v);
        *(uint64_t *) field = size;
        return 0;
}

/* cgroup v2's cpu.weight: 1 to 10000, 100 the default share. */
static int parse_cpu_weight(const evd_key_ctx *ctx, const char *v, void *field) {
        uint64_t n;
        int r = parse_uint_upto(ctx, v, 10000, " (1 to 10000)", &n);

        if (r == 0 && n == 0)
                return evd_key_fail(ctx, "0 is out of range (1 to 10000)");
        if (r == 0)
                *(unsigned *) field = (unsigned) n;
        return r;
}

/* N%: of one CPU's time (200% is two CPUs' worth). */
static int parse_percent(const evd_key_ctx *ctx, const char *v, void *field) {
        size_t n = strspn(v, "0123456789");
        unsigned pct = 0;

        if (n == 0 || n > 6 || strcmp(v + n, "%") != 0)
                return evd_key_fail(ctx, "'%s' is not a percentage (for example 50%%, 200%%)", v);
        for (size_t i = 0; i < n; i++)
                pct = pct * 10 + (unsigned) (v[i] - '0');
        if (pct == 0 || pct > PERCENT_MAX)
                return evd_key_fail(ctx, "%s is out of range (1%% to 100000%%)", v);
        *(unsigned *) field = pct;
        return 0;
}

static int parse_signal(const evd_key_ctx *ctx, const char *v, void *field) {
        if (evd_parse_signal(v, field) < 0)
                return evd_key_fail(ctx, "'%s' is not a signal (for example TERM, SIGINT, 15)", v);
        return 0;
}

/* Octal, as umask(1) and systemd's UMask= take it: 0022, 027, 0. */
static int parse_umask(const evd_key_ctx *ctx, const char *v, void *field) {
        unsigned mask = 0;
        size_t n = strspn(v, "01234567");

        if (n == 0 || v[n] != '\0' || n > 4)
                return evd_key_fail(ctx, "'%s' is not a file mode mask (octal, 0000 to 0777, for example 0022)", v);
        for (size_t i = 0; i < n; i++)
                mask = mask * 8 + (unsigned) (v[i] - '0');
        if (mask > 0777)
                return evd_key_fail(ctx, "%s is out of range (0000 to 0777)", v);
        *(unsigned *) field = mask;
        return 0;
}

/* One of the words of the type's names table; stored as the enum. */
static int parse_word(const evd_key_ctx *ctx, const char *v, void *field) {
        const evd_names *names = ctx->key->type->names;
        int i = evd_names_find(names, v);
        char list[256];

        if (i < 0) {
                evd_names_list(names, list, sizeof(list));
                return evd_key_fail(ctx, "unknown %s '%s' (%s)", names->what, v, list);
        }
        *(unsigned *) field = (unsigned) i;
        return 0;
}

/* "N / INTERVAL": at most N starts (N >= 1) within INTERVAL. */
static int parse_start_limit(const evd_key_ctx *ctx, const char *v, void *field) {
        const char *slash = strchr(v, '/');
        evd_start_limit lim;
        char n[32];
        size_t len;
        int r;

        if (!slash)
                return evd_key_fail(ctx, "'%s' is not N / INTERVAL (for example 5 / 10s)", v);
        len = (size_t) (slash - v);
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
        if (len == 0 || len >= sizeof(n))
                return evd_key_fail(ctx, "'%s' is not N / INTERVAL (for example 5 / 10s)", v);
        memcpy(n, v, len);
        n[len] = '\0';
        for (slash++; *slash == ' ' || *slash == '\t'; slash++)
                ;
        r = parse_uint_upto(ctx, n, UINT32_MAX, " (1 to 4294967295 starts)", &lim.burst);
        if (r == 0)
                r = parse_positive_duration(ctx, slash, &lim.interval);
        if (r < 0)
                return r;
        if (lim.burst == 0)
                return evd_key_fail(ctx, "must allow at least 1 start, not %s", n);
        *(evd_start_limit *) field = lim;
        return 0;
}

/* ---- strings ---- */

static int set_string(const evd_key_ctx *ctx, const char *v, char **field) {
        *field = strdup(v);
        return *field ? 0 : out_of_memory(ctx);
}

static int parse_string(const evd_key_ctx *ctx, const char *v, void *field) {
        return set_string(ctx, v, field);
}

/* "key =" says "none", like leaving the key out. */
static int parse_text(const evd_key_ctx *ctx, const char *v, void *field) {
        return v[0] ? set_string(ctx, v, field) : 0;
}

static int parse_path(const evd_key_ctx *ctx, const char *v, void *field) {
        if (v[0] != '/')
                return evd_key_fail(ctx, "'%s' is not an absolute path", v);
        return set_string(ctx, v, field);
}

static int parse_symbol(const evd_key_ctx *ctx, const char *v, void *field) {
        static const char ident[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

        if (!v[0] || strspn(v, ident) != strlen(v))
                return evd_key_fail(ctx, "'%s' is not a C identifier", v);
        return set_string(ctx, v, field);
}

/* A calendar expression, kept as written (calendar.c reads it again for
 * each job). */
static int parse_calendar(const evd_key_ctx *ctx, const char *v, void *field) {
        evd_calendar c;
        char why[200];

        if (evd_calendar_parse(v, &c, why, sizeof(why)) < 0)
                return evd_key_fail(ctx, "%s", why);
        return set_string(ctx, v, field);
}

/* A zone of the tz database by name; whether tzdata has it is the probe's
 * question. */
static int parse_timezone(const evd_key_ctx *ctx, const char *v, void *field) {
        if (evd_timezone_check(v) < 0)
                return evd_key_fail(ctx, "'%s' is not a time zone name (for example UTC, Europe/Berlin)", v);
        return set_string(ctx, v, field);
}

/* An absolute path, or "none". Where a socket may go: sun_path's size. */
static int parse_socket_path(const evd_key_ctx *ctx, const char *v, void *field) {
        if (strcmp(v, "none") != 0 && strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return evd_key_fail(ctx, "'%s' is too long for a socket (at most %zu bytes)", v,
                                    sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
        return strcmp(v, "none") == 0 ? set_string(ctx, v, field) : parse_path(ctx, v, field);
}

/* Where the HTTP endpoint listens: HOST:PORT with an IPv4 address or a
 * bracketed IPv6 one, or an absolute path for a unix socket. "none": off. */
static int parse_listen_address(const evd_key_ctx *ctx, const char *v, void *field) {
        struct sockaddr_storage ss;
        socklen_t len;

        if (v[0] == '/' || strcmp(v, "none") == 0)
                return parse_socket_path(ctx, v, field);
        if (evd_listen_address_parse(v, &ss, &len) < 0)
                return evd_key_fail(ctx, "'%s' is not 127.0.0.1:PORT, [::1]:PORT or an absolute path", v);
        return set_string(ctx, v, field);
}

/* A group, by name or number; whether it exists is the probe's question. */
static int parse_group_name(const evd_key_ctx *ctx, const char *v, void *field) {
        return v[0] ? set_string(ctx, v, field) : evd_key_fail(ctx, "a group name or number is needed");
}

#define DROP_AND_SWITCH "jobs cannot switch users in a daemon that gives up root ([daemon] user or group)"

/* A user or a group, by name or number; whether it exists is the probe's
 * question. A daemon that gives up root runs every job as itself. */
static int parse_identity(const evd_key_ctx *ctx, const char *v, void *field) {
        const evd_config *c = ctx->config;

        if (ctx->task && (c->user || c->group))
                return evd_key_fail(ctx, "%s", DROP_AND_SWITCH);
        for (size_t i = 0; !ctx->task && i < c->n_tasks; i++)
                if (c->tasks[i].user || c->tasks[i].group)
                        return evd_key_fail(ctx, "[task.%s] switches users: %s", c->tasks[i].name, DROP_AND_SWITCH);
        return set_string(ctx, v, field);
}

/* NAME=VALUE words, split as a command is. */
static int parse_environment(const evd_key_ctx *ctx, const char *v, void *field) {
        char ***env = field, why[128];
        int r = evd_split_command(v, env, why, sizeof(why));

        if (r == -ENOMEM)
                return out_of_memory(ctx);
        if (r < 0)
                return evd_key_fail(ctx, "%s", why);
        for (char **e = *env; *e; e++)
                if (!strchr(*e, '=') || **e == '=')
                        return evd_key_fail(ctx, "'%s' is not NAME=VALUE", *e);
        return 0;
}

/* Task names, split on blanks, each once; whether each names a task of
 * the config, and the cycles they make, is the check of the whole file
 * (conf_deps.c). */
static int parse_task_names(const evd_key_ctx *ctx, const char *v, void *field) {
        char ***names = field;
        int r = evd_split_command(v, names, NULL, 0);

        if (r == -ENOMEM)
                return out_of_memory(ctx);
        if (r < 0 || !*names)
                return evd_key_fail(ctx, "'%s' is not a list of task names", v);
        for (char **n = *names; *n; n++) {
                if (!evd_task_name_valid(*n, strlen(*n)))
                        return evd_key_fail(ctx, "'%s' is not a task name", *n);
                for (char **m = *names; m < n; m++)
                        if (strcmp(*m, *n) == 0)
                                return evd_key_fail(ctx, "'%s' is named twice", *n);
        }
        return 0;
}

/* ---- shown in records ---- */

static bool show_boolean(const void *field, const char *record, evd_field *f) {
        *f = EVD_NUM(record, *(const bool *) field);
        return true;
}

static bool show_string(const void *field, const char *record, evd_field *f) {
        const char *s = *(char *const *) field;

        *f = EVD_STR(record, s);
        return s != NULL;
}

static bool show_kind(const void *field, const char *record, evd_field *f) {
        *f = EVD_STR(record, evd_kind_names.names[*(const enum evd_kind_id *) field]);
        return true;
}

/* ---- the types ---- */

#define TYPE(name, ...) const evd_type evd_type_##name = { __VA_ARGS__ };
TYPE(boolean, .parse = parse_boolean, .show = show_boolean)
TYPE(duration, .parse = parse_duration)
TYPE(positive_duration, .parse = parse_positive_duration)
TYPE(stack_size, .parse = parse_stack_size)
TYPE(threads, .parse = parse_threads)
TYPE(count, .parse = parse_count)
TYPE(speed, .parse = parse_speed)
TYPE(signal, .parse = parse_signal)
TYPE(umask, .parse = parse_umask)
TYPE(text, .parse = parse_text, .show = show_string)
TYPE(string, .parse = parse_string, .show = show_string)
TYPE(path, .parse = parse_path, .show = show_string)
TYPE(symbol, .parse = parse_symbol, .show = show_string)
TYPE(identity, .parse = parse_identity, .show = show_string)
TYPE(socket_path, .parse = parse_socket_path, .show = show_string)
TYPE(listen_address, .parse = parse_listen_address, .show = show_string)
TYPE(group_name, .parse = parse_group_name, .show = show_string)
TYPE(environment, .parse = parse_environment)
TYPE(kind, .parse = parse_word, .show = show_kind, .names = &evd_kind_names)
TYPE(schedule, .parse = parse_word, .names = &evd_schedule_names)
TYPE(restart, .parse = parse_word, .names = &evd_restart_names)
TYPE(start_limit, .parse = parse_start_limit)
TYPE(catch_up, .parse = parse_word, .names = &evd_catch_up_names)
TYPE(calendar, .parse = parse_calendar, .show = show_string)
TYPE(timezone, .parse = parse_timezone, .show = show_string)
TYPE(sigint, .parse = parse_word, .names = &evd_sigint_names)
TYPE(ready, .parse = parse_word, .names = &evd_ready_names)
TYPE(task_names, .parse = parse_task_names)
TYPE(output, .parse = parse_word, .names = &evd_output_names)
TYPE(rate, .parse = parse_rate)
TYPE(memory_size, .parse = parse_memory_size)
TYPE(cpu_weight, .parse = parse_cpu_weight)
TYPE(percent, .parse = parse_percent)
TYPE(log_target, .parse = parse_word, .names = &evd_log_target_names)
TYPE(log_overflow, .parse = parse_word, .names = &evd_log_overflow_names)
