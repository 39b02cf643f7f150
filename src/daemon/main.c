/* evtaskd's command line: the options (one table drives the parser and
 * --help), --check-config, and the exit statuses; the running daemon is
 * daemon.c's. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "daemon.h"

/* What the command line asked for. */
struct args {
        const char *config_path; /* --config's, or EVD_DEFAULT_CONFIG; NULL: the demo */
        bool demo;              /* --demo: the built-in demo config */
        bool default_path;      /* no --config: EVD_DEFAULT_CONFIG */
        bool check_only;
        int log_target;         /* -1: the config's */
        evd_overrides overrides; /* --set's, then the environment's */
};

static void usage(FILE *f);

/* Each option's effect: -1 to go on, or the status to exit with now. */
static int opt_config(struct args *a, const char *v) {
        a->config_path = v;
        return -1;
}

static int opt_demo(struct args *a, const char *v) {
        (void) v;
        a->demo = true;
        return -1;
}

static int opt_check_config(struct args *a, const char *v) {
        (void) v;
        a->check_only = true;
        return -1;
}

static int opt_set(struct args *a, const char *v) {
        char err[768];
        int r = evd_overrides_add_arg(&a->overrides, v, err, sizeof(err));

        if (r == -ENOMEM) {
                fprintf(stderr, "evtaskd: out of memory\n");
                return EX_OSERR;
        }
        if (r < 0) {
                fprintf(stderr, "evtaskd: %s\n", err);
                return EX_USAGE;
        }
        return -1;
}

static int opt_log(struct args *a, const char *v) {
        char list[64];

        a->log_target = evd_names_find(&evd_log_target_names, v);
        if (a->log_target >= 0)
                return -1;
        evd_names_list(&evd_log_target_names, list, sizeof(list));
        fprintf(stderr, "evtaskd: --log: unknown sink '%s' (%s)\n", v, list);
        return EX_USAGE;
}

static int opt_help(struct args *a, const char *v) {
        (void) a;
        (void) v;
        usage(stdout);
        return EXIT_SUCCESS;
}

static int opt_version(struct args *a, const char *v) {
        (void) a;
        (void) v;
        printf("evtaskd %s\n", EVTASK_VERSION);
        return EXIT_SUCCESS;
}

/* The options: this table drives both the parser and --help. A help text
 * may hold '\n' for a line more. */
static const struct option_row {
        const char *name;       /* --NAME */
        char letter;            /* -L, or 0 */
        const char *arg;        /* the argument's name, or NULL: none */
        int (*set)(struct args *a, const char *arg);
        const char *help;
} option_rows[] = {
        { "config", 'c', "FILE", opt_config, "read FILE (default: " EVD_DEFAULT_CONFIG ")" },
        { "demo", 0, NULL, opt_demo, "run the built-in demo config instead of a file" },
        { "check-config", 0, NULL, opt_check_config, "validate the config, print a summary, and exit" },
        { "set", 's', "KEY=VALUE", opt_set,
          "set [daemon] KEY, over the file and over the\nenvironment's EVTASKD_KEY (repeatable)" },
        { "log", 'l', "SINK", opt_log,
          "auto, console, json or journal (default: the\nconfig's [daemon] log, else auto)" },
        { "help", 'h', NULL, opt_help, "show this help and exit" },
        { "version", 'V', NULL, opt_version, "show the version and exit" },
};

static void usage(FILE *f) {
        fputs("Usage: evtaskd [OPTION]...\n"
              "Run the tasks a config file declares, as coroutines on one event loop.\n"
              "\n",
              f);
        for (size_t i = 0; i < ARRAY_SIZE(option_rows); i++) {
                const struct option_row *o = &option_rows[i];
                const char *help = o->help, *nl;
                char spelling[64];

                snprintf(spelling, sizeof(spelling), "%c%c%c --%s%s%s", o->letter ? '-' : ' ',
                         o->letter ? o->letter : ' ', o->letter ? ',' : ' ', o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
                while ((nl = strchr(help, '\n'))) {
                        fprintf(f, "  %-22s %.*s\n", spelling, (int) (nl - help), help);
                        help = nl + 1;
                        spelling[0] = '\0';
                }
                fprintf(f, "  %-22s %s\n", spelling, help);
        }
        fputs("\n"
              "Every [daemon] KEY may also be set as EVTASKD_KEY=VALUE in the environment\n"
              "(EVTASKD_DRAIN_TIMEOUT=5s); --set wins over it, and both over the file.\n"
              "\n"
              "Signals:\n"
              "  SIGINT                 pause every pausable task; the next SIGINT resumes\n"
              "                         (with [daemon] sigint = shutdown: as SIGTERM)\n"
              "  SIGTERM, SIGQUIT       graceful shutdown: cancel unshielded tasks, drain\n"
              "                         shielded ones for up to drain_timeout; a second\n"
              "                         signal forces at once, a third exits at once\n"
              "  SIGHUP                 reload: re-read the config, apply what changed\n"
              "  SIGUSR1                write the task table to the log\n"
              "\n"
              "Exit status:\n"
              "  0   every task ended or was cancelled cleanly\n"
              "  3   some task had to be force-cancelled (drain deadline, second signal)\n"
              "  4   some blocking call ignored its stop request and was abandoned\n"
              "  64  usage error          78  configuration error\n"
              "  70  a module's task called exit() or faulted inside the daemon\n"
              "  71  a system error (a task or the loop could not be created)\n"
              "  74  the log's sink failed (its reader went away, no journald)\n"
              "  128+N  exited at once on the third shutdown signal N\n",
              f);
}

static const struct option_row *row_named(const char *name, size_t len) {
        for (size_t i = 0; i < ARRAY_SIZE(option_rows); i++)
                if (strlen(option_rows[i].name) == len && strncmp(option_rows[i].name, name, len) == 0)
                        return &option_rows[i];
        return NULL;
}

static const struct option_row *row_lettered(char letter) {
        for (size_t i = 0; i < ARRAY_SIZE(option_rows); i++)
                if (option_rows[i].letter && option_rows[i].letter == letter)
                        return &option_rows[i];
        return NULL;
}

/* getopt_long takes any unambiguous abbreviation of a long option, so
 * that `--check` would be --check-config, and a typo for another option
 * could one day mean it: every long option must be spelled out. -1, or
 * EX_USAGE (said on stderr). */
static int check_spelled_out(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                const char *s = argv[i];
                const struct option_row *o;
                size_t len;

                if (strcmp(s, "--") == 0)
                        break;
                if (s[0] != '-' || s[1] == '\0')
                        continue;
                if (s[1] != '-') {
                        /* -lSINK, -l SINK, -Vh: a letter that takes an
                         * argument ends the cluster. */
                        for (const char *l = s + 1; *l; l++) {
                                o = row_lettered(*l);
                                if (o && o->arg) {
                                        i += l[1] == '\0';
                                        break;
                                }
                        }
                        continue;
                }
                len = strcspn(s + 2, "=");
                o = row_named(s + 2, len);
                if (!o) {
                        fprintf(stderr, "evtaskd: unknown option '%.*s' (options are not abbreviated)\n",
                                (int) len + 2, s);
                        usage(stderr);
                        return EX_USAGE;
                }
                i += o->arg && s[2 + len] == '\0';
        }
        return -1;
}

/* -1 to go on, or the status to exit with now (--help, --version, or a
 * usage error, said on stderr). */
static int parse_args(int argc, char **argv, struct args *a) {
        struct option longopts[ARRAY_SIZE(option_rows) + 1] = { 0 };
        char shortopts[2 * ARRAY_SIZE(option_rows) + 1], *s = shortopts;
        int c;

        /* getopt_long gives a row's letter, or 256 + its index. */
        for (size_t i = 0; i < ARRAY_SIZE(option_rows); i++) {
                const struct option_row *o = &option_rows[i];

                longopts[i] = (struct option) { o->name, o->arg ? required_argument : no_argument, NULL,
                                                o->letter ? o->letter : 256 + (int) i };
                if (o->letter) {
                        *s++ = o->letter;
                        if (o->arg)
                                *s++ = ':';
                }
        }
        *s = '\0';
        *a = (struct args) { .log_target = -1 };
        c = check_spelled_out(argc, argv);
        if (c >= 0)
                return c;
        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                const struct option_row *o = c >= 256 ? &option_rows[c - 256] : NULL;
                int r;

                if (!o)
                        o = row_lettered((char) c);
                if (!o) {
                        usage(stderr);
                        return EX_USAGE;
                }
                r = o->set(a, optarg);
                if (r >= 0)
                        return r;
        }
        if (optind < argc) {
                fprintf(stderr, "evtaskd: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return EX_USAGE;
        }
        if (a->demo && a->config_path) {
                fprintf(stderr, "evtaskd: --demo and --config exclude each other\n");
                return EX_USAGE;
        }
        /* Never the demo unless asked for: an image's bare `evtaskd` must
         * not race a rabbit and a turtle in production. */
        if (!a->demo && !a->config_path) {
                a->config_path = EVD_DEFAULT_CONFIG;
                a->default_path = true;
        }
        return -1;
}

/* Loads the config and runs the daemon on it: the exit status. */
static int run(const struct args *a) {
        evd_config *config = NULL;
        enum evd_log_target target;
        evd_log *log;
        char err[768];
        int r;

        if (a->config_path)
                r = evd_config_load_file(a->config_path, &a->overrides, &config, err, sizeof(err));
        else
                r = evd_config_load_string(EVD_DEMO_NAME, evd_demo_conf, &a->overrides, &config, err, sizeof(err));
        if (r == -ENOENT && a->default_path)
                snprintf(err, sizeof(err), "%s: no such file: the default config (give --config FILE, or --demo "
                         "for the built-in demo)", EVD_DEFAULT_CONFIG);
        if (r < 0) {
                fprintf(stderr, "evtaskd: %s\n", err);
                /* systemctl status shows it too. */
                evd_notify_send(NULL, "STATUS=bad config: %s\nERRNO=%d", err, -r);
                /* Out of memory is no fault of the config: a restart may do. */
                return r == -ENOMEM ? EX_OSERR : EX_CONFIG;
        }
        if (a->check_only) {
                char from[512];

                evd_config_overrides_list(config, from, sizeof(from));
                if (a->overrides.unknown[0])
                        fprintf(stderr, "evtaskd: warning: ignored, no [daemon] key:%s\n", a->overrides.unknown);
                if (evd_stop_grace_short(config)) {
                        char said[128];

                        evd_stop_grace_say(config, said, sizeof(said));
                        fprintf(stderr, "evtaskd: warning: %s: shielded work still running then is killed by the "
                                "service manager\n", said);
                }
                printf("%s: ok, %zu tasks%s%s\n", config->path, config->n_tasks, from[0] ? "; set outside it:" : "",
                       from);
                evd_config_free(config);
                return EXIT_SUCCESS;
        }

        target = a->log_target >= 0 ? (enum evd_log_target) a->log_target : config->log;
        r = evd_log_new(target, &log);
        if (r < 0 && r != -EOPNOTSUPP && r != -ENOMEM) {
                /* --log journal without journald: nowhere to log to. */
                fprintf(stderr, "evtaskd: cannot log to %s: journald is not reachable (%s)\n",
                        evd_log_target_names.names[target], strerror(-r));
                evd_config_free(config);
                return EX_IOERR;
        }
        if (r < 0) {
                fprintf(stderr, "evtaskd: cannot log to %s: %s\n", evd_log_target_names.names[target],
                        r == -EOPNOTSUPP ? "not supported by this build" : strerror(-r));
                evd_config_free(config);
                return a->log_target >= 0 ? EX_USAGE : EX_CONFIG;
        }
        return evd_daemon_run(config, a->config_path, &a->overrides, log);
}

int main(int argc, char **argv) {
        struct args a;
        int r;

        evd_daemon_prepare();
        r = parse_args(argc, argv, &a);
        if (r < 0 && evd_overrides_add_env(&a.overrides, environ) < 0) {
                fprintf(stderr, "evtaskd: out of memory\n");
                r = EX_OSERR;
        }
        if (r >= 0) {
                evd_overrides_free(&a.overrides);
                return r;
        }
        r = run(&a);
        evd_overrides_free(&a.overrides);
        return r;
}

