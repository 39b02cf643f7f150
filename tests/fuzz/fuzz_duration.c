/* The value parsers: evd_parse_duration, and on the same string
 * evd_parse_size, evd_parse_bool and evd_parse_signal. Each is checked
 * against a model of what config.h documents, computed another way:
 * - duration: DIGITS[.DIGITS][ns|us|ms|s|min|h], the exact value floored
 *   to the nanosecond (in 128 bits, digit by digit), at most INT64_MAX;
 *   never negative;
 * - size: DIGITS[K|M|G] (either case), powers of 1024, at most SIZE_MAX;
 * - bool: the eight words, any case;
 * - signal: [SIG]NAME as evd_signal_name() spells it, or 1 to NSIG - 1;
 * and on failure each leaves its output alone. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "values.h"

#define NSEC_PER_SEC ((uint64_t) 1000000000)

/* DIGITS[.DIGITS] at the start of s. */
typedef struct number {
        uint64_t whole;
        bool big;               /* the digits say 2^64 or more */
        const char *frac;       /* the digits after the point, or NULL */
        size_t n_frac;
        const char *rest;       /* what follows */
} number;

static bool scan_number(const char *s, number *n) {
        *n = (number) { 0 };
        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned __int128 w = (unsigned __int128) n->whole * 10 + (unsigned) (*s - '0');

                if (w > UINT64_MAX)
                        n->big = true;
                else
                        n->whole = (uint64_t) w;
        }
        if (*s == '.') {
                n->frac = ++s;
                while (*s >= '0' && *s <= '9')
                        s++;
                n->n_frac = (size_t) (s - n->frac);
                if (n->n_frac == 0)
                        return false;
        }
        n->rest = s;
        return true;
}

/* floor(unit * 0.FRAC), from the last digit back: floor((d + x) / 10)
 * equals floor((d + floor(x)) / 10) for a whole d, so each step may drop
 * what is below 1 and the result is still exact. */
static uint64_t frac_floor(const char *frac, size_t n, uint64_t unit) {
        uint64_t w = 0;

        for (size_t i = n; i-- > 0;)
                w = ((uint64_t) (frac[i] - '0') * unit + w) / 10;
        return w;
}

static void check_duration(const char *s) {
        static const struct {
                const char *suffix;
                uint64_t ns;
                uint64_t slack; /* how far below the exact value it may be */
        } units[] = {
                { "ns", 1, 0 },
                { "us", 1000, 0 },
                { "ms", 1000000, 0 },
                { "s", NSEC_PER_SEC, 0 },
                { "", NSEC_PER_SEC, 0 },
                /* Not a power of ten: past the last digit that weighs a
                 * whole number of nanoseconds, the parser drops or rounds
                 * the rest ("finer digits are dropped"). */
                { "min", 60 * NSEC_PER_SEC, 6 },
                { "h", 3600 * NSEC_PER_SEC, 9 },
        };
        const int64_t sentinel = -42;
        int64_t ns = sentinel;
        int r = evd_parse_duration(s, &ns);
        unsigned __int128 exact = 0;
        bool valid = false;
        uint64_t slack = 0;
        number n;

        if (scan_number(s, &n))
                for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                        if (strcmp(n.rest, units[i].suffix) == 0) {
                                exact = (unsigned __int128) n.whole * units[i].ns +
                                        frac_floor(n.frac, n.n_frac, units[i].ns);
                                valid = !n.big;
                                slack = units[i].slack;
                        }

        if (r < 0) {
                fuzz_require(r == -EINVAL, "duration '%s': returned %d", s, r);
                fuzz_require(ns == sentinel, "duration '%s': output changed on failure", s);
                /* The parser may land below INT64_MAX where the exact
                 * value is just above it, never the other way round. */
                fuzz_require(!valid || exact > (unsigned __int128) INT64_MAX,
                             "duration '%s' refused; it is %llu ns", s, (unsigned long long) exact);
                return;
        }
        fuzz_require(ns >= 0, "duration '%s' is %lld ns, negative", s, (long long) ns);
        fuzz_require(valid, "duration '%s' accepted (%lld ns); it is not one", s, (long long) ns);
        fuzz_require((unsigned __int128) ns <= exact && exact - (unsigned __int128) ns <= slack,
                     "duration '%s' is %lld ns; exactly, it is %llu ns", s, (long long) ns,
                     (unsigned long long) exact);
}

static void check_size(const char *s) {
        size_t size = 42;
        int r = evd_parse_size(s, &size);
        uint64_t mult = 0;
        bool valid;
        number n;

        if (scan_number(s, &n) && !n.frac && !n.big) {
                if (!n.rest[0])
                        mult = 1;
                else if (!n.rest[1] && strchr("Kk", n.rest[0]))
                        mult = (uint64_t) 1 << 10;
                else if (!n.rest[1] && strchr("Mm", n.rest[0]))
                        mult = (uint64_t) 1 << 20;
                else if (!n.rest[1] && strchr("Gg", n.rest[0]))
                        mult = (uint64_t) 1 << 30;
        }
        valid = mult && (unsigned __int128) n.whole * mult <= SIZE_MAX;
        if (r < 0) {
                fuzz_require(r == -EINVAL, "size '%s': returned %d", s, r);
                fuzz_require(size == 42, "size '%s': output changed on failure", s);
                fuzz_require(!valid, "size '%s' refused", s);
                return;
        }
        fuzz_require(valid, "size '%s' accepted (%zu); it is not one", s, size);
        fuzz_require(size == n.whole * mult, "size '%s' is %zu, not %llu", s, size,
                     (unsigned long long) (n.whole * mult));
}

static void check_bool(const char *s) {
        static const char *const words[] = { "yes", "true", "on", "1", "no", "false", "off", "0" };
        bool b = true, before = b;
        int r = evd_parse_bool(s, &b), want = -1;

        for (int i = 0; i < 8; i++)
                if (strcasecmp(s, words[i]) == 0)
                        want = i < 4;
        if (r < 0) {
                fuzz_require(r == -EINVAL && b == before, "bool '%s': returned %d, or changed its output", s, r);
                fuzz_require(want < 0, "bool '%s' refused", s);
                return;
        }
        fuzz_require(want == (int) b, "bool '%s' is %d", s, b);
}

/* The signal whose name, after "SIG", is s; 0 if none. */
static int signal_by_name(const char *s) {
        for (int signo = 1; signo < NSIG; signo++) {
                const char *name = evd_signal_name(signo);

                if (strncmp(name, "SIG", 3) == 0 && strcmp(name + 3, s) == 0)
                        return signo;
        }
        return 0;
}

static void check_signal(const char *s) {
        const char *bare = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
        int signo = -42, r = evd_parse_signal(s, &signo), want = signal_by_name(bare);
        number n;

        if (!want && scan_number(bare, &n) && !n.frac && !n.rest[0] && !n.big && n.whole > 0 && n.whole < NSIG)
                want = (int) n.whole;
        if (r < 0) {
                fuzz_require(r == -EINVAL && signo == -42, "signal '%s': returned %d, or changed its output", s, r);
                fuzz_require(!want, "signal '%s' refused; it is %d", s, want);
                return;
        }
        fuzz_require(signo == want, "signal '%s' is %d, expected %d", s, signo, want);
        fuzz_require(signo > 0 && signo < NSIG, "signal '%s' is %d, out of range", s, signo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_string(data, size);

        if (!s)
                return 0;
        check_duration(s);
        check_size(s);
        check_bool(s);
        check_signal(s);
        free(s);
        return 0;
}
