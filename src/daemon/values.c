/* Values as a config file or a command line writes them: durations,
 * sizes, booleans, numbers and signals. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "values.h"

/* DIGITS[.DIGITS], no sign, no exponent, and not strtod(): a daemon that
 * calls setlocale() must still read "1.5". */
typedef struct decimal {
        uint64_t whole;         /* the digits before the point */
        bool overflow;          /* ... did not fit in 64 bits */
        const char *frac;       /* the digits after it (text: each caller
                                 * scales them differently) */
        size_t n_frac;
} decimal;

/* Reads a decimal at *s and moves *s past it. 0, or -EINVAL if there is
 * none ("", ".5", "5.", "-1"). */
static int scan_decimal(const char **s, decimal *ret) {
        const char *q = *s;
        decimal d = { 0 };

        if (*q < '0' || *q > '9')
                return -EINVAL;
        for (; *q >= '0' && *q <= '9'; q++) {
                unsigned digit = (unsigned) (*q - '0');

                if (d.whole > (UINT64_MAX - digit) / 10)
                        d.overflow = true;
                else
                        d.whole = d.whole * 10 + digit;
        }
        if (*q == '.') {
                q++;
                d.frac = q;
                while (*q >= '0' && *q <= '9')
                        q++;
                d.n_frac = (size_t) (q - d.frac);
                if (d.n_frac == 0)
                        return -EINVAL;
        }
        *s = q;
        *ret = d;
        return 0;
}

int evd_parse_duration(const char *s, int64_t *ret_ns) {
        static const struct {
                const char *suffix;
                uint64_t ns;
        } units[] = {
                { "ns", 1 },
                { "us", 1000 },
                { "ms", 1000000 },
                { "s", EVD_NSEC_PER_SEC },
                { "", EVD_NSEC_PER_SEC },   /* a bare number is seconds */
                { "min", 60 * EVD_NSEC_PER_SEC },
                { "h", 3600 * EVD_NSEC_PER_SEC },
        };
        uint64_t unit = 0, ns, scale;
        decimal d;

        if (!s || !ret_ns || scan_decimal(&s, &d) < 0 || d.overflow)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (strcmp(s, units[i].suffix) == 0)
                        unit = units[i].ns;
        if (unit == 0 || d.whole > (uint64_t) INT64_MAX / unit)
                return -EINVAL;

        ns = d.whole * unit;
        /* Every unit is a small number times a power of ten, so dividing the
         * scale by ten stays exact down to the nanosecond; finer digits are
         * dropped. */
        scale = unit;
        for (size_t i = 0; i < d.n_frac && scale >= 10; i++) {
                uint64_t add;

                scale /= 10;
                add = (uint64_t) (d.frac[i] - '0') * scale;
                if (ns > (uint64_t) INT64_MAX - add)
                        return -EINVAL;
                ns += add;
        }
        *ret_ns = (int64_t) ns;
        return 0;
}

int evd_parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };

        if (!s || !ret)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int evd_parse_size(const char *s, size_t *ret) {
        uint64_t mult;
        decimal d;

        if (!s || !ret || scan_decimal(&s, &d) < 0 || d.overflow || d.frac)
                return -EINVAL;
        switch (*s) {
        case '\0':
                mult = 1;
                break;
        case 'K': case 'k':
                mult = 1 << 10;
                break;
        case 'M': case 'm':
                mult = 1 << 20;
                break;
        case 'G': case 'g':
                mult = 1 << 30;
                break;
        default:
                return -EINVAL;
        }
        if (mult > 1 && s[1] != '\0')
                return -EINVAL;
        if (d.whole > SIZE_MAX / mult)
                return -EINVAL;
        *ret = (size_t) (d.whole * mult);
        return 0;
}

int evd_parse_uint(const char *s, uint64_t *ret) {
        decimal d;

        if (scan_decimal(&s, &d) < 0 || d.frac || *s != '\0')
                return -EINVAL;
        if (d.overflow)
                return -ERANGE;
        *ret = d.whole;
        return 0;
}

int evd_parse_positive(const char *s, double max, double *ret) {
        uint64_t mant = 0;
        double pow10 = 1, v;
        decimal d;

        if (scan_decimal(&s, &d) < 0 || *s != '\0')
                return -EINVAL;
        if (d.overflow || d.whole > (uint64_t) max)
                return -ERANGE;
        /* 15 fraction digits are all a double holds next to the whole part;
         * the rest are dropped. */
        for (size_t i = 0; i < d.n_frac && i < 15; i++) {
                mant = mant * 10 + (uint64_t) (d.frac[i] - '0');
                pow10 *= 10;
        }
        v = (double) d.whole + (double) mant / pow10;
        if (!(v > 0 && v <= max))
                return -ERANGE;
        *ret = v;
        return 0;
}

/* The signals known by name, for kill_signal and for records. */
static const struct {
        const char *name;
        int signo;
} signals[] = {
        { "SIGHUP", SIGHUP }, { "SIGINT", SIGINT }, { "SIGQUIT", SIGQUIT }, { "SIGKILL", SIGKILL },
        { "SIGUSR1", SIGUSR1 }, { "SIGUSR2", SIGUSR2 }, { "SIGTERM", SIGTERM }, { "SIGSTOP", SIGSTOP },
        { "SIGCONT", SIGCONT }, { "SIGABRT", SIGABRT }, { "SIGALRM", SIGALRM }, { "SIGPIPE", SIGPIPE },
        { "SIGSEGV", SIGSEGV }, { "SIGBUS", SIGBUS }, { "SIGFPE", SIGFPE }, { "SIGILL", SIGILL },
};

int evd_parse_signal(const char *s, int *ret_signo) {
        uint64_t n;

        if (strncmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
                if (strcmp(s, signals[i].name + 3) == 0) {
                        *ret_signo = signals[i].signo;
                        return 0;
                }
        if (evd_parse_uint(s, &n) < 0 || n == 0 || n >= (uint64_t) NSIG)
                return -EINVAL;
        *ret_signo = (int) n;
        return 0;
}

const char *evd_signal_name(int signo) {
        for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
                if (signals[i].signo == signo)
                        return signals[i].name;
        return "signal";
}

