/* Config errors: the first one (or, for the probe, the one on the earliest
 * line) as "FILE:LINE: ..." in the caller's buffer, and the shapes every
 * message about a key takes. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "config.h"

#define SECTION_MAX 80          /* "task." and a task name */

int evd_conf_vfail(evd_conf_error *e, int code, unsigned line, const char *fmt, va_list ap) {
        char body[512];

        assert(code < 0);
        if (e->code && (!e->earliest || line == 0 || (e->line && e->line <= line)))
                return e->code;
        e->code = code;
        e->line = line;
        if (!e->buf || e->len == 0)
                return code;
        vsnprintf(body, sizeof(body), fmt, ap);
        if (line > 0)
                snprintf(e->buf, e->len, "%s:%u: %s", e->path, line, body);
        else
                snprintf(e->buf, e->len, "%s: %s", e->path, body);
        return code;
}

int evd_conf_fail(evd_conf_error *e, int code, unsigned line, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = evd_conf_vfail(e, code, line, fmt, ap);
        va_end(ap);
        return r;
}

/* "key 'K' in [S]: " and the detail. */
static int vfail_key(evd_conf_error *e, const char *section, const char *key, unsigned line, const char *fmt,
                     va_list ap) {
        char detail[384];

        vsnprintf(detail, sizeof(detail), fmt, ap);
        return evd_conf_fail(e, -EINVAL, line, "key '%s' in [%s]: %s", key, section, detail);
}

int evd_conf_fail_key(evd_conf_error *e, const char *section, const char *key, unsigned line, const char *fmt,
                      ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail_key(e, section, key, line, fmt, ap);
        va_end(ap);
        return r;
}

int evd_conf_fail_task_key(evd_conf_error *e, const evd_task_conf *t, enum evd_task_key index, const char *fmt,
                           ...) {
        char section[SECTION_MAX];
        va_list ap;
        int r;

        snprintf(section, sizeof(section), "task.%s", t->name);
        va_start(ap, fmt);
        r = vfail_key(e, section, evd_task_key(index)->name, t->key_line[index], fmt, ap);
        va_end(ap);
        return r;
}

int evd_key_fail(const evd_key_ctx *ctx, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail_key(ctx->error, ctx->section, ctx->key->name, ctx->line, fmt, ap);
        va_end(ap);
        return r;
}

