/* Layer 1: stacks and context switches, without a scheduler. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "coro.h"
#include "sanitizer.h"
#include "stack.h"
#include "testutil.h"

#if EVT__ASAN
/* The guard page test expects a plain SIGSEGV, not ASan's report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
        return "handle_segv=0";
}
#endif

/* ---- stacks ---- */

START_TEST(stack_pool_reuses) {
        evt__stack_pool pool;
        evt__stack *a, *b;

        evt__stack_pool_init(&pool, 64 * 1024, 4);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &a), 0);
        ck_assert_uint_eq(pool.n_used, 1);
        ck_assert_uint_ge(a->size, 60 * 1024);
        memset(a->lo, 0xa5, a->size); /* the whole usable range is writable */
        evt__stack_put(&pool, a);
        ck_assert_uint_eq(pool.n_used, 0);
        ck_assert_uint_eq(pool.n_free, 1);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &b), 0);
        ck_assert_ptr_eq(a, b);
        ck_assert_uint_eq(pool.n_free, 0);
        evt__stack_put(&pool, b);
        evt__stack_pool_done(&pool);
        ck_assert_uint_eq(pool.n_free, 0);
}
END_TEST

START_TEST(stack_pool_bounded) {
        evt__stack_pool pool;
        evt__stack *s[5];

        evt__stack_pool_init(&pool, 32 * 1024, 2);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(evt__stack_get(&pool, 0, &s[i]), 0);
        for (int i = 0; i < 5; i++)
                evt__stack_put(&pool, s[i]);
        /* Kept until a trim gives the rest back (the scheduler's, when idle). */
        ck_assert_uint_eq(pool.n_free, 5);
        ck_assert(evt__stack_pool_over(&pool));
        ck_assert(!evt__stack_pool_trim(&pool, 16));
        ck_assert_uint_eq(pool.n_free, 2);
        ck_assert(!evt__stack_pool_over(&pool));
        evt__stack_pool_done(&pool);
}
END_TEST

/* Past the budget of guarded stacks, stacks come from slabs, each with a
 * canary below it; a whole slab goes back to the system once it is free. */
START_TEST(stack_slabs_beyond_the_guard_budget) {
        size_t before = evt__stack_guarded_now();
        evt__stack_pool pool;
        evt__stack *s[EVT__SLAB_STACKS + 3];
        size_t n = sizeof(s) / sizeof(s[0]);

        evt__stack_guarded_max_set(before + 2);
        evt__stack_pool_init(&pool, 32 * 1024, 0);
        for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(evt__stack_get(&pool, 0, &s[i]), 0);
                ck_assert_uint_ge(s[i]->size, 31 * 1024);
                memset(s[i]->lo, 0xa5, s[i]->size); /* usable, all of it */
                ck_assert(evt__stack_intact(s[i]));
        }
        ck_assert_uint_eq(evt__stack_guarded_now(), before + 2);
        ck_assert_ptr_null(s[0]->slab);
        ck_assert_ptr_null(s[1]->slab);
        for (size_t i = 2; i < n; i++)
                ck_assert_ptr_nonnull(s[i]->slab);
        ck_assert_ptr_eq(s[2]->slab, s[EVT__SLAB_STACKS + 1]->slab);
        ck_assert_ptr_ne(s[2]->slab, s[EVT__SLAB_STACKS + 2]->slab);

        /* One byte below the usable range breaks the canary. */
        {
                char was = ((char *) s[5]->lo)[-1];

                ((char *) s[5]->lo)[-1] = (char) ~was;
                ck_assert(!evt__stack_intact(s[5]));
                ((char *) s[5]->lo)[-1] = was;
                ck_assert(evt__stack_intact(s[5]));
        }

        /* The first slab empties but for one stack: it stays. */
        for (size_t i = 0; i < n; i++)
                if (i != 3)
                        evt__stack_put(&pool, s[i]);
        while (evt__stack_pool_trim(&pool, 1))
                ;
        ck_assert_uint_eq(evt__stack_guarded_now(), before);
        ck_assert_uint_eq(pool.n_free, EVT__SLAB_STACKS - 1);
        evt__stack_put(&pool, s[3]);
        ck_assert(!evt__stack_pool_trim(&pool, 16));
        ck_assert_uint_eq(pool.n_free, 0);
        ck_assert(evt__list_empty(&pool.slabs));
        evt__stack_pool_done(&pool);
        evt__stack_guarded_max_set(SIZE_MAX);
}
END_TEST

START_TEST(stack_other_size_not_pooled) {
        evt__stack_pool pool;
        evt__stack *s;

        evt__stack_pool_init(&pool, 32 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 256 * 1024, &s), 0);
        ck_assert_uint_ge(s->size, 250 * 1024);
        evt__stack_put(&pool, s);
        ck_assert_uint_eq(pool.n_free, 0);
        evt__stack_pool_done(&pool);
}
END_TEST

START_TEST(stack_size_limits) {
        evt__stack_pool pool;
        evt__stack *s = NULL;

        evt__stack_pool_init(&pool, 32 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 1024, &s), -EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_uint_eq(pool.n_used, 0);
        ck_assert_uint_eq(evt__stack_size_round(EVT__STACK_MAX + 1), 0);
        ck_assert_uint_eq(evt__stack_size_round(EVT__STACK_MIN + 1) % (size_t) sysconf(_SC_PAGESIZE), 0);
        evt__stack_pool_done(&pool);
}
END_TEST

/* Writing one byte below the usable range hits the guard page. */
START_TEST(stack_guard_page_faults) {
        evt__stack_pool pool;
        evt__stack *s;

        evt__stack_pool_init(&pool, 32 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &s), 0);
        ((volatile char *) s->lo)[-1] = 1;
        ck_abort_msg("the write below the stack did not fault");
}
END_TEST

/* ---- the object cache ---- */

START_TEST(cache_reuses_newest) {
        evt__cache *c = evt__cache_new(232, 8);
        void *a, *b;

        ck_assert_ptr_nonnull(c);
        a = evt__cache_alloc(c);
        b = evt__cache_alloc(c);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_ne(a, b);
        evt__cache_free(a);
        ck_assert_ptr_eq(evt__cache_alloc(c), a); /* the newest free, still warm */
        evt__cache_free(a);
        evt__cache_free(b);
        /* Its one chunk is kept, empty, for the next allocation. */
        ck_assert_uint_eq(evt__cache_bytes(c), 64 * 1024);
        evt__cache_release(c);
}
END_TEST

#define CACHE_OBJECTS 20000

/* Objects over many chunks: each is its own, aligned and intact, and once
 * all are freed (in a scattered order) the cache keeps one chunk. Twice, to
 * start again from the spare. */
START_TEST(cache_many_objects) {
        static unsigned char *obj[CACHE_OBJECTS];
        evt__cache *c = evt__cache_new(232, 8);
        uint32_t x = 12345;

        for (int round = 0; round < 2; round++) {
                for (size_t i = 0; i < CACHE_OBJECTS; i++) {
                        obj[i] = evt__cache_alloc(c);
                        ck_assert_ptr_nonnull(obj[i]);
                        ck_assert_uint_eq((uintptr_t) obj[i] % 8, 0);
                        memset(obj[i], (int) (i & 0xff), 232);
                        memcpy(obj[i], &i, sizeof(i));
                }
                ck_assert_uint_ge(evt__cache_bytes(c), (size_t) CACHE_OBJECTS * 232);
                for (size_t i = 0; i < CACHE_OBJECTS; i++) {
                        size_t j;

                        memcpy(&j, obj[i], sizeof(j));
                        ck_assert_uint_eq(j, i);
                        ck_assert_uint_eq(obj[i][231], i & 0xff);
                }
                /* A scattered order: chunks fill and empty out of turn. */
                for (size_t i = CACHE_OBJECTS - 1; i > 0; i--) {
                        size_t j;
                        unsigned char *t;

                        x = x * 1103515245u + 12345u;
                        j = (x >> 8) % (i + 1);
                        t = obj[i];
                        obj[i] = obj[j];
                        obj[j] = t;
                }
                for (size_t i = 0; i < CACHE_OBJECTS; i++)
                        evt__cache_free(obj[i]);
                ck_assert_uint_eq(evt__cache_bytes(c), 64 * 1024);
        }
        evt__cache_release(c);
}
END_TEST

/* Objects kept after the owner is done keep the cache; the last one frees
 * it (valgrind and LSan would report it otherwise). */
START_TEST(cache_outlives_its_owner) {
        evt__cache *c = evt__cache_new(100, 16);
        void *o[3];

        for (int i = 0; i < 3; i++) {
                o[i] = evt__cache_alloc(c);
                ck_assert_uint_eq((uintptr_t) o[i] % 16, 0);
        }
        evt__cache_release(c);
        for (int i = 0; i < 3; i++) {
                memset(o[i], 0x5a, 100); /* still its own */
                evt__cache_free(o[i]);
        }
        evt__cache_release(evt__cache_new(8, 8)); /* none out: it goes at once */
}
END_TEST

START_TEST(cache_bad_arguments) {
        ck_assert_ptr_null(evt__cache_new(0, 8));
        ck_assert_ptr_null(evt__cache_new(16 * 1024 + 1, 8));
        ck_assert_ptr_null(evt__cache_new(64, 4));
        ck_assert_ptr_null(evt__cache_new(64, 32));
        evt__cache_free(NULL);
        evt__cache_release(NULL);
}
END_TEST

/* ---- contexts ---- */

static evt__coro main_ctx, ping_ctx;
static int trace[16];
static int ntrace;

static void ping(void *arg) {
        int base = *(int *) arg;
        /* Locals and callee-saved registers survive switches. */
        volatile int local = base;

        for (int i = 0; i < 3; i++) {
                trace[ntrace++] = local + i;
                evt__coro_switch(&ping_ctx, &main_ctx);
        }
        trace[ntrace++] = -1;
        evt__coro_switch_final(&ping_ctx, &main_ctx);
}

START_TEST(switch_round_trip) {
        evt__stack_pool pool;
        evt__stack *s;
        int base = 100;

        evt__stack_pool_init(&pool, 64 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &s), 0);
        evt__coro_init_main(&main_ctx);
        evt__coro_init(&ping_ctx, s, ping, &base);
        ntrace = 0;
        for (int i = 0; i < 4; i++) {
                int before = ntrace;

                trace[ntrace++] = i;
                evt__coro_switch(&main_ctx, &ping_ctx);
                ck_assert_int_eq(ntrace, before + 2);
        }
        ck_assert_int_eq(trace[0], 0);
        ck_assert_int_eq(trace[1], 100);
        ck_assert_int_eq(trace[3], 101);
        ck_assert_int_eq(trace[5], 102);
        ck_assert_int_eq(trace[7], -1);
        evt__stack_put(&pool, s);
        evt__stack_pool_done(&pool);
}
END_TEST

/* A stack that was used by a context that ended can start a new one. */
START_TEST(switch_reuses_stack) {
        evt__stack_pool pool;
        evt__stack *s;

        evt__stack_pool_init(&pool, 64 * 1024, 8);
        evt__coro_init_main(&main_ctx);
        for (int round = 0; round < 3; round++) {
                int base = round * 10;

                ck_assert_int_eq(evt__stack_get(&pool, 0, &s), 0);
                evt__coro_init(&ping_ctx, s, ping, &base);
                ntrace = 0;
                for (int i = 0; i < 4; i++)
                        evt__coro_switch(&main_ctx, &ping_ctx);
                ck_assert_int_eq(ntrace, 4);
                ck_assert_int_eq(trace[2], base + 2);
                evt__stack_put(&pool, s);
        }
        ck_assert_uint_eq(pool.n_free, 1);
        evt__stack_pool_done(&pool);
}
END_TEST

static void use_floats(void *arg) {
        double *out = arg;
        double acc = 1.0;

        for (int i = 0; i < 3; i++) {
                acc = acc * 1.5 + 0.25;
                evt__coro_switch(&ping_ctx, &main_ctx);
        }
        *out = acc;
        evt__coro_switch_final(&ping_ctx, &main_ctx);
}

/* Floating-point values across switches (a misaligned stack would crash in
 * SSE code on x86-64). */
START_TEST(switch_keeps_floats_and_alignment) {
        evt__stack_pool pool;
        evt__stack *s;
        double out = 0, expect = 1.0;

        evt__stack_pool_init(&pool, 64 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &s), 0);
        evt__coro_init_main(&main_ctx);
        evt__coro_init(&ping_ctx, s, use_floats, &out);
        for (int i = 0; i < 4; i++)
                evt__coro_switch(&main_ctx, &ping_ctx);
        for (int i = 0; i < 3; i++)
                expect = expect * 1.5 + 0.25;
        ck_assert_double_eq(out, expect);
        evt__stack_put(&pool, s);
        evt__stack_pool_done(&pool);
}
END_TEST

#if !EVT_CORO_UCONTEXT
/* Every callee-saved register the ABI names survives a switch to a context
 * that overwrites all of them, not only those the compiler happens to use
 * around the call: the other side writes a pattern into each (its own
 * prologue saves the values, but restores them only when it returns, which
 * it does not do before switching back). The frame pointer is left out:
 * the compiler may not let go of it. */
#if defined(__x86_64__)
#define SAVED_INTS(X) X(0, "rbx") X(1, "r12") X(2, "r13") X(3, "r14") X(4, "r15")
#define SAVED_FLOATS(X)
#define INT_SET(n, reg) "mov $-1, %%" reg "\n"
#elif defined(__aarch64__)
#define SAVED_INTS(X) X(0, "x19") X(1, "x20") X(2, "x21") X(3, "x22") X(4, "x23") X(5, "x24") \
        X(6, "x25") X(7, "x26") X(8, "x27") X(9, "x28")
#define SAVED_FLOATS(X) X(0, "d8") X(1, "d9") X(2, "d10") X(3, "d11") X(4, "d12") X(5, "d13") \
        X(6, "d14") X(7, "d15")
#define INT_SET(n, reg) "mov " reg ", #-1\n"
#define FLOAT_SET(n, reg) "fmov " reg ", #-1.0\n"
#define FLOAT_CONSTRAINT "+w"
#elif defined(__riscv)
#define SAVED_INTS(X) X(0, "s1") X(1, "s2") X(2, "s3") X(3, "s4") X(4, "s5") X(5, "s6") \
        X(6, "s7") X(7, "s8") X(8, "s9") X(9, "s10") X(10, "s11")
#define SAVED_FLOATS(X) X(0, "fs0") X(1, "fs1") X(2, "fs2") X(3, "fs3") X(4, "fs4") X(5, "fs5") \
        X(6, "fs6") X(7, "fs7") X(8, "fs8") X(9, "fs9") X(10, "fs10") X(11, "fs11")
#define INT_SET(n, reg) "li " reg ", -1\n"
#define FLOAT_SET(n, reg) "fcvt.d.l " reg ", zero\n"
#define FLOAT_CONSTRAINT "+f"
#endif

#define CLOBBER(n, reg) reg,
static void clobber_saved(void *arg) {
        (void) arg;
        for (;;) {
                __asm__ volatile(SAVED_INTS(INT_SET) SAVED_FLOATS(FLOAT_SET)
                                 ::: SAVED_INTS(CLOBBER) SAVED_FLOATS(CLOBBER) "memory");
                evt__coro_switch(&ping_ctx, &main_ctx);
        }
}

START_TEST(switch_keeps_callee_saved_registers) {
        evt__stack_pool pool;
        evt__stack *s;

        evt__stack_pool_init(&pool, 64 * 1024, 8);
        ck_assert_int_eq(evt__stack_get(&pool, 0, &s), 0);
        evt__coro_init_main(&main_ctx);
        evt__coro_init(&ping_ctx, s, clobber_saved, NULL);
        for (int round = 0; round < 2; round++) {
#define INT_DECL(n, reg) register long i##n __asm__(reg) = 1000 + n + round;
#define INT_KEEP(n, reg) __asm__ volatile("" : "+r"(i##n));
#define INT_CHECK(n, reg) ck_assert_msg(i##n == 1000 + n + round, "%s lost", reg);
#define FLOAT_DECL(n, reg) register double f##n __asm__(reg) = 0.5 + n + round;
#define FLOAT_KEEP(n, reg) __asm__ volatile("" : FLOAT_CONSTRAINT(f##n));
#define FLOAT_CHECK(n, reg) ck_assert_msg(f##n == 0.5 + n + round, "%s lost", reg);
                SAVED_INTS(INT_DECL)
                SAVED_FLOATS(FLOAT_DECL)
                SAVED_INTS(INT_KEEP)
                SAVED_FLOATS(FLOAT_KEEP)
                evt__coro_switch(&main_ctx, &ping_ctx);
                SAVED_INTS(INT_KEEP)
                SAVED_FLOATS(FLOAT_KEEP)
                SAVED_INTS(INT_CHECK)
                SAVED_FLOATS(FLOAT_CHECK)
        }
        evt__stack_put(&pool, s);
        evt__stack_pool_done(&pool);
}
END_TEST
#endif

Suite *evt_test_suite(void) {
        Suite *s = suite_create("coro");
        TCase *tc;

        tc = tcase_create("stack");
        tcase_add_test(tc, stack_pool_reuses);
        tcase_add_test(tc, stack_pool_bounded);
        tcase_add_test(tc, stack_other_size_not_pooled);
        tcase_add_test(tc, stack_size_limits);
        tcase_add_test(tc, stack_slabs_beyond_the_guard_budget);
        suite_add_tcase(s, tc);

        /* Needs a fork to survive the fault: not under CK_FORK=no. */
        if (!getenv("CK_FORK") || strcmp(getenv("CK_FORK"), "no") != 0) {
                tc = tcase_create("guard");
                tcase_add_test_raise_signal(tc, stack_guard_page_faults, SIGSEGV);
                suite_add_tcase(s, tc);
        }

        tc = tcase_create("cache");
        tcase_add_test(tc, cache_reuses_newest);
        tcase_add_test(tc, cache_many_objects);
        tcase_add_test(tc, cache_outlives_its_owner);
        tcase_add_test(tc, cache_bad_arguments);
        suite_add_tcase(s, tc);

        tc = tcase_create("switch");
        tcase_add_test(tc, switch_round_trip);
        tcase_add_test(tc, switch_reuses_stack);
        tcase_add_test(tc, switch_keeps_floats_and_alignment);
#if !EVT_CORO_UCONTEXT
        tcase_add_test(tc, switch_keeps_callee_saved_registers);
#endif
        suite_add_tcase(s, tc);
        return s;
}
