/* The config parser's state, shared by its two files: config.c (lines,
 * keys and values) and conf_section.c (sections and their tasks). */
#pragma once

#include <ini.h>
#include <stdio.h>

#include "config.h"


typedef struct evd_parser {
        const char *path;       /* for messages */
        FILE *file;             /* the input: a file ... */
        const char *text;       /* ... or a string, up to its NUL */
        unsigned line;          /* number of the line last read */
        bool want_handler;      /* that line is a key = value line ... */
        bool handled;           /* ... and inih has passed it to the handler */
        bool continuation;      /* that line continues the value before it */

        evd_config *config;     /* being built; freed if anything fails */
        size_t tasks_cap;       /* allocated length of config->tasks */

        enum evd_section section; /* the section being read */
        char section_name[8 + EVD_TASK_NAME_MAX]; /* "daemon" or "task.NAME" */
        size_t task;            /* index of its task in config->tasks (the
                                 * array moves as it grows: no pointers) */

        /* The value being read: complete when a line does not continue it. */
        bool pending;
        const evd_key *key;     /* its key, or NULL for arg.KEY */
        char arg_name[INI_MAX_LINE]; /* arg.KEY, as inih's buffer is reused */
        unsigned key_line;
        size_t key_indent;      /* leading whitespace of the key's line */
        char *value;
        size_t value_len, value_cap;

        evd_conf_error error;   /* the first error */
        unsigned error_at;      /* the line being read when it was found */
} evd_parser;

/* An error about the line being read, or a line before it. */
__attribute__((format(printf, 4, 5)))
int evd__parser_fail(evd_parser *p, int code, unsigned line, const char *fmt, ...);
/* The task of the section being read, or NULL in [daemon]. */
evd_task_conf *evd__parser_task(evd_parser *p);

/* A "[...]" line: closes the section before it and opens the new one. */
int evd__section_header(evd_parser *p, const char *line);
/* What one key cannot check, once a section is complete. */
int evd__section_close(evd_parser *p);
