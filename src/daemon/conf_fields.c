/* Everything made from the key lists of config.h: the key table, the
 * defaults, and the copy, clear, comparison and record fields of task
 * settings. Nothing here names a key: a new key is a row of the list. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"

/* Enum fields are parsed as unsigned (conf_types.c). */
_Static_assert(sizeof(enum evd_kind_id) == sizeof(unsigned) && sizeof(enum evd_schedule) == sizeof(unsigned) &&
                       sizeof(enum evd_restart) == sizeof(unsigned) && sizeof(enum evd_sigint) == sizeof(unsigned) &&
                       sizeof(enum evd_ready) == sizeof(unsigned) &&
                       sizeof(enum evd_output_mode) == sizeof(unsigned) &&
                       sizeof(enum evd_log_target) == sizeof(unsigned) &&
                       sizeof(enum evd_log_overflow) == sizeof(unsigned),
               "an enum is not an unsigned int");

#define DECLARE_TYPE(field, type, kinds, required, dflt, record) extern const evd_type evd_type_##type;
EVD_DAEMON_KEYS(DECLARE_TYPE)
EVD_TASK_KEYS(DECLARE_TYPE)

/* ---- the key table ---- */

#define DAEMON_ROW(field, ty, kinds_, required_, dflt, record_)                                       \
        { .name = #field, .section = EVD_SECTION_DAEMON, .index = EVD_KEY_##field, .kinds = (kinds_),     \
          .required = (required_), .type = &evd_type_##ty, .offset = offsetof(evd_config, field),       \
          .record = (record_) },
#define TASK_ROW(field, ty, kinds_, required_, dflt, record_)                                         \
        { .name = #field, .section = EVD_SECTION_TASK, .index = EVD_TASK_KEY_##field, .kinds = (kinds_),  \
          .required = (required_), .type = &evd_type_##ty, .offset = offsetof(evd_task_conf, field),    \
          .record = (record_) },

/* Each task key's kinds, for its aliases' rows (an enum holds ~0u as -1,
 * which converts back). */
#define KINDS_OF(field, ty, kinds_, ...) KINDS_OF_##field = (int) (kinds_),
enum { EVD_TASK_KEYS(KINDS_OF) };

/* An alias: its key's row under another name, shown in no record. */
#define ALIAS_ROW(alias, field, ty)                                                                    \
        { .name = #alias, .section = EVD_SECTION_TASK, .index = EVD_TASK_KEY_##field,                     \
          .kinds = (unsigned) KINDS_OF_##field, .required = 0, .type = &evd_type_##ty,                    \
          .offset = offsetof(evd_task_conf, field), .record = NULL },
#define ALIAS_TYPE_CHECK(alias, field, ty)                                                             \
        _Static_assert(__builtin_types_compatible_p(EVD_CTYPE_##ty, __typeof__(((evd_task_conf *) 0)->field)), \
                       #alias " has the type of " #field);
EVD_TASK_KEY_ALIASES(ALIAS_TYPE_CHECK)

const evd_key evd_keys[] = { EVD_DAEMON_KEYS(DAEMON_ROW) EVD_TASK_KEYS(TASK_ROW) EVD_TASK_KEY_ALIASES(ALIAS_ROW) };
const size_t evd_n_keys = ARRAY_SIZE(evd_keys);

/* The [daemon] rows come first, then the task rows in their list's order. */
const evd_key *evd_task_key(enum evd_task_key index) {
        return &evd_keys[EVD_DAEMON_KEY_COUNT + index];
}

const evd_key *evd_key_find(enum evd_section section, const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(evd_keys); i++)
                if (evd_keys[i].section == section && strcmp(evd_keys[i].name, name) == 0)
                        return &evd_keys[i];
        return NULL;
}

void evd_key_names(enum evd_section section, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(evd_keys) && len < size; i++)
                if (evd_keys[i].section == section)
                        len += (size_t) snprintf(buf + len, size - len, "%s%s", len ? ", " : "", evd_keys[i].name);
}

/* ---- defaults ---- */

#define DEFAULT(field, type, kinds, required, dflt, record) .field = (dflt),

void evd__config_defaults(evd_config *c) {
        *c = (evd_config) { EVD_DAEMON_KEYS(DEFAULT) };
}

void evd__task_conf_defaults(evd_task_conf *t) {
        *t = (evd_task_conf) { EVD_TASK_KEYS(DEFAULT) };
}

/* ---- copy, clear, compare: by the field's C type ---- */

static int copy_string(void *field) {
        char **s = field;

        if (*s && !(*s = strdup(*s)))
                return -ENOMEM;
        return 0;
}

static int copy_strv(void *field) {
        char ***v = field;

        if (*v && !(*v = evd_strv_copy(*v)))
                return -ENOMEM;
        return 0;
}

static int copy_value(void *field) {
        (void) field;
        return 0;
}

static void clear_string(void *field) {
        free(*(char **) field);
        *(char **) field = NULL;
}

static void clear_strv(void *field) {
        evd_strv_free(*(char ***) field);
        *(char ***) field = NULL;
}

static void clear_value(void *field) {
        (void) field;
}

static bool equal_string(const void *a, const void *b, size_t size) {
        const char *x = *(char *const *) a, *y = *(char *const *) b;

        (void) size;
        return x && y ? strcmp(x, y) == 0 : x == y;
}

static bool equal_strv(const void *a, const void *b, size_t size) {
        (void) size;
        return evd_strv_equal(*(char **const *) a, *(char **const *) b);
}

static bool equal_value(const void *a, const void *b, size_t size) {
        return memcmp(a, b, size) == 0;
}

#define BY_TYPE(f, string, strv, value) _Generic((f), char *: string, char **: strv, default: value)
#define COPY(f) BY_TYPE(f, copy_string, copy_strv, copy_value)(&(f))
#define CLEAR(f) BY_TYPE(f, clear_string, clear_strv, clear_value)(&(f))
#define EQUAL(a, b) BY_TYPE(a, equal_string, equal_strv, equal_value)(&(a), &(b), sizeof(a))

/* The task's settings that no key sets directly. */
#define TASK_STATE(X) X(name) X(argv) X(args)

int evd_task_conf_copy(evd_task_conf *dst, const evd_task_conf *src) {
        evd_task_conf t = *src;
        int r = 0;

        /* Each copy replaces the borrowed pointer, or leaves NULL. */
#define COPY_KEY(field, ...) r |= COPY(t.field);
#define COPY_STATE(field) r |= COPY(t.field);
        EVD_TASK_KEYS(COPY_KEY)
        TASK_STATE(COPY_STATE)
        if (r < 0) {
                evd_task_conf_clear(&t);
                return -ENOMEM;
        }
        *dst = t;
        return 0;
}

void evd_task_conf_clear(evd_task_conf *t) {
#define CLEAR_KEY(field, ...) CLEAR(t->field);
#define CLEAR_STATE(field) CLEAR(t->field);
        EVD_TASK_KEYS(CLEAR_KEY)
        TASK_STATE(CLEAR_STATE)
}

bool evd_task_conf_equal(const evd_task_conf *a, const evd_task_conf *b) {
#define EQUAL_KEY(field, ...) EQUAL(a->field, b->field) &&
#define EQUAL_STATE(field) EQUAL(a->field, b->field) &&
        return EVD_TASK_KEYS(EQUAL_KEY) TASK_STATE(EQUAL_STATE) true;
}

bool evd_task_conf_same_run(const evd_task_conf *a, const evd_task_conf *b) {
        evd_task_conf t = *a; /* borrowed: compared, never freed */

#define TAKE_BORROWED(field) t.field = b->field;
        EVD_TASK_LIVE_KEYS(TAKE_BORROWED)
        return evd_task_conf_equal(&t, b);
}

int evd_task_conf_take_live(evd_task_conf *dst, const evd_task_conf *src, char *buf, size_t size) {
        evd_task_conf t = *src;
        size_t len = 0;
        int r = 0;

        buf[0] = '\0';
#define NAME_LIVE_CHANGE(field)                                                                            \
        if (!EQUAL(dst->field, src->field) && len < size)                                                  \
                len += (size_t) snprintf(buf + len, size - len, " %s", #field);
        EVD_TASK_LIVE_KEYS(NAME_LIVE_CHANGE)

#define COPY_LIVE(field) r |= COPY(t.field);
        EVD_TASK_LIVE_KEYS(COPY_LIVE)
        if (r < 0) {
#define CLEAR_LIVE(field) CLEAR(t.field);
                EVD_TASK_LIVE_KEYS(CLEAR_LIVE)
                return -ENOMEM;
        }
#define MOVE_LIVE(field)                                                                                   \
        CLEAR(dst->field);                                                                                 \
        dst->field = t.field;
        EVD_TASK_LIVE_KEYS(MOVE_LIVE)
        return 0;
}

void evd__config_daemon_clear(evd_config *c) {
#define CLEAR_DAEMON_KEY(field, ...) CLEAR(c->field);
        EVD_DAEMON_KEYS(CLEAR_DAEMON_KEY)
}

void evd__config_daemon_swap(evd_config *a, evd_config *b, enum evd_daemon_key index) {
        switch (index) {
#define SWAP_DAEMON_KEY(field, ...)                                                                    \
        case EVD_KEY_##field: {                                                                        \
                __typeof__(a->field) t = a->field;                                                     \
                a->field = b->field;                                                                   \
                b->field = t;                                                                          \
                break;                                                                                 \
        }
                EVD_DAEMON_KEYS(SWAP_DAEMON_KEY)
        case EVD_DAEMON_KEY_COUNT:
                break;
        }
}

void evd_config_daemon_changes(const evd_config *a, const evd_config *b, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = '\0';
#define NAME_CHANGE(field, ...)                                                                        \
        if (!EQUAL(a->field, b->field) && len < size)                                                 \
                len += (size_t) snprintf(buf + len, size - len, " %s", #field);
        EVD_DAEMON_KEYS(NAME_CHANGE)
}

/* ---- records ---- */

size_t evd_task_conf_fields(const evd_task_conf *t, evd_field *fields, size_t max) {
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(evd_keys) && n < max; i++) {
                const evd_key *k = &evd_keys[i];

                if (k->section == EVD_SECTION_TASK && k->record &&
                    k->type->show((const char *) t + k->offset, k->record, &fields[n]))
                        n++;
        }
        return n;
}
