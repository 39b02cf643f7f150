/* Context creation and switching.
 *
 * By default a context's first frame is written by hand and switching is a
 * register-only switch in assembly (coro_switch_*.S): it saves the
 * callee-saved registers and the stack pointer, nothing else, and makes no
 * system call. glibc's swapcontext also saves the signal mask with a system
 * call on every switch, which costs many times as much (docs/BENCHMARKS.md,
 * W1); it stays available, with makecontext, as the `coro_switch=ucontext`
 * build option for machines without the assembly.
 *
 * The floating-point control and status registers (MXCSR and the x87
 * control word, FPCR, fcsr) are not switched: they are the thread's, not a
 * task's. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "coro.h"
#include "sanitizer.h"

/* The context being switched to, for a fresh context's entry function,
 * which receives no argument; and the one switched from, for ASan. */
static __thread evt__coro *switch_to;
static __thread evt__coro *switch_from;

#if EVT__ASAN
/* Before leaving `from`: tell ASan which stack comes next. A NULL save slot
 * tells it from's fake stack may be destroyed (from never runs again). */
static void asan_start(evt__coro *from, evt__coro *to, bool final) {
        __sanitizer_start_switch_fiber(final ? NULL : &from->asan_fake,
                                       to->stack_lo, to->stack_size);
}

/* After arriving in `self`: the previous stack's bounds come back, which is
 * how the thread's own stack gets to know its bounds. */
static void asan_finish(evt__coro *self) {
        evt__coro *prev = switch_from;
        const void *lo;
        size_t size;

        __sanitizer_finish_switch_fiber(self ? self->asan_fake : NULL, &lo, &size);
        if (prev && !prev->stack_lo) {
                prev->stack_lo = lo;
                prev->stack_size = size;
        }
}
#else
#define asan_start(from, to, final) ((void) 0)
#define asan_finish(self) ((void) 0)
#endif

#if EVT__TSAN
/* TSan keeps a shadow stack per fiber. A context gets its fiber when it is
 * first switched to (the thread's own: when it is first left); a finished
 * context's fiber is destroyed by the next context to run, since no fiber
 * can destroy itself. */
static __thread void *tsan_dead;

static void tsan_switch(evt__coro *from, evt__coro *to, bool final) {
        if (!from->tsan_fiber)
                from->tsan_fiber = __tsan_get_current_fiber();
        if (!to->tsan_fiber)
                to->tsan_fiber = __tsan_create_fiber(0);
        if (final)
                tsan_dead = from->tsan_fiber;
        __tsan_switch_to_fiber(to->tsan_fiber, 0);
}

static void tsan_arrived(void) {
        if (tsan_dead) {
                __tsan_destroy_fiber(tsan_dead);
                tsan_dead = NULL;
        }
}
#else
#define tsan_switch(from, to, final) ((void) 0)
#define tsan_arrived() ((void) 0)
#endif

static void coro_entry_args(const evt__coro *c, evt__coro_fn *ret_fn, void **ret_arg);

static _Noreturn void coro_entry(void) {
        evt__coro *self = switch_to;
        evt__coro_fn fn;
        void *arg;

        coro_entry_args(self, &fn, &arg);
        asan_finish(NULL);
        tsan_arrived();
        fn(arg);
        abort(); /* fn must end with evt__coro_switch_final */
}

/* What every fresh context starts with, whichever switch is built. */
static void coro_start_at(evt__coro *c, const evt__stack *s, evt__coro_fn fn, void *arg) {
        *c = (evt__coro) { 0 };
#if EVT_CORO_UCONTEXT
        c->fn = fn;
        c->arg = arg;
#else
        (void) fn; /* on the stack: evt__coro_init */
        (void) arg;
#endif
#if EVT__ASAN
        c->stack_lo = s->lo;
        c->stack_size = s->size;
#else
        (void) s;
#endif
}

void evt__coro_init_main(evt__coro *c) {
        memset(c, 0, sizeof(*c));
}

#if EVT_CORO_UCONTEXT

void evt__coro_init(evt__coro *c, evt__stack *s, evt__coro_fn fn, void *arg) {
        coro_start_at(c, s, fn, arg);
        getcontext(&c->uc);
        c->uc.uc_stack.ss_sp = s->lo;
        c->uc.uc_stack.ss_size = s->size;
        c->uc.uc_link = NULL;
#if defined(__x86_64__) && defined(__GLIBC__)
        /* coro_entry saves a zero frame pointer: backtraces end with it,
         * not in the C library's start of the context. */
        c->uc.uc_mcontext.gregs[REG_RBP] = 0;
#endif
        makecontext(&c->uc, coro_entry, 0);
}

static void coro_entry_args(const evt__coro *c, evt__coro_fn *ret_fn, void **ret_arg) {
        *ret_fn = c->fn;
        *ret_arg = c->arg;
}

static void raw_switch(evt__coro *from, evt__coro *to) {
        swapcontext(&from->uc, &to->uc);
}

#else

/* Save callee-saved registers on the current stack, store the stack pointer
 * in *save_sp, load load_sp, restore the registers found there, return. */
void evt__coro_switch_asm(void **save_sp, void *load_sp);

/* The new stack gets, at its top, the frame evt__coro_switch_asm loads,
 * laid out as the .S file of the architecture stores it: the callee-saved
 * registers zero (a zero frame pointer ends backtraces) and, where the
 * switch returns to, coro_entry. coro_entry itself never returns. After
 * the switch, the stack pointer is aligned as at any function entry: 8
 * below a 16-byte boundary on x86-64 (under a null return address), on it
 * on AArch64 and RISC-V. No makecontext: it wants an initialised
 * ucontext_t, kilobytes to copy. */
#if defined(__x86_64__)
#define FRAME_WORDS 8           /* r15 r14 r13 r12 rbx rbp, ret, null */
#define FRAME_ENTRY 6
#elif defined(__aarch64__)
#define FRAME_WORDS 20          /* x19..x28, x29, x30, d8..d15 */
#define FRAME_ENTRY 11          /* x30: ret goes there */
#elif defined(__riscv) && __riscv_xlen == 64
#define FRAME_WORDS 26          /* ra, s0..s11, fs0..fs11, padding */
#define FRAME_ENTRY 0           /* ra */
#else
#error "no register-only switch for this architecture: build with -Dcoro_switch=ucontext"
#endif

/* Above the frame, the entry point and its argument, for coro_entry: two
 * words, so the frame's alignment stays as it was. coro_entry never
 * returns, and no function writes above the stack pointer it was entered
 * with, so they stay until it has read them. */
#define ENTRY_WORDS 2

void evt__coro_init(evt__coro *c, evt__stack *s, evt__coro_fn fn, void *arg) {
        uintptr_t top = ((uintptr_t) s->lo + s->size) & ~(uintptr_t) 15;
        uintptr_t *frame = (uintptr_t *) top - FRAME_WORDS - ENTRY_WORDS;

        coro_start_at(c, s, fn, arg);
        memset(frame, 0, FRAME_WORDS * sizeof(*frame));
        frame[FRAME_ENTRY] = (uintptr_t) coro_entry;
        frame[FRAME_WORDS] = (uintptr_t) fn;
        frame[FRAME_WORDS + 1] = (uintptr_t) arg;
        c->sp = frame;
}

/* Read on the first switch in, before the context has saved a stack
 * pointer of its own: sp is still the first frame. */
static void coro_entry_args(const evt__coro *c, evt__coro_fn *ret_fn, void **ret_arg) {
        const uintptr_t *frame = c->sp;

        *ret_fn = (evt__coro_fn) frame[FRAME_WORDS];
        *ret_arg = (void *) frame[FRAME_WORDS + 1];
}

static void raw_switch(evt__coro *from, evt__coro *to) {
        evt__coro_switch_asm(&from->sp, to->sp);
}

#endif

void evt__coro_switch(evt__coro *from, evt__coro *to) {
        assert(from != to);
        asan_start(from, to, false);
        tsan_switch(from, to, false);
        switch_from = from;
        switch_to = to;
        raw_switch(from, to);
        /* Back in from, switched to by someone else. */
        asan_finish(from);
        tsan_arrived();
}

void evt__coro_switch_final(evt__coro *from, evt__coro *to) {
        asan_start(from, to, true);
        tsan_switch(from, to, true);
        switch_from = from;
        switch_to = to;
        raw_switch(from, to);
        abort(); /* a finished context is never switched to */
}

/* ---- backtraces ---- */

/* Where the frame record (the caller's frame pointer, then the return
 * address) sits relative to a frame pointer: at it on x86-64 and AArch64,
 * just below it on RISC-V, whose frame pointer is the frame's top. */
#if defined(__riscv)
#define FP_RECORD (-2 * (intptr_t) sizeof(uintptr_t))
#else
#define FP_RECORD 0
#endif

/* The frame pointer chain from (pc, fp), inside [lo, hi): each record must
 * be aligned and lie in the range, or the walk stops before reading it;
 * a record that does not climb (callers' frames are higher on the stack)
 * gives its return address and ends the walk. */
EVT__NO_ASAN
static size_t fp_walk(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi, void **pcs, size_t n) {
        size_t k = 0;

        while (k < n && pc) {
                uintptr_t rec = fp + (uintptr_t) FP_RECORD;
                const uintptr_t *r = (const uintptr_t *) rec;

                pcs[k++] = (void *) pc;
                if (fp == 0 || rec % sizeof(uintptr_t) || rec < lo || rec > hi - 2 * sizeof(uintptr_t))
                        break;
                if (r[0] == 0) /* the entry's frame: its caller starts the context */
                        break;
                pc = r[1];
                fp = r[0] > fp ? r[0] : 0; /* 0: this return address is the last */
        }
        return k;
}

EVT__NO_ASAN
int evt__coro_backtrace(const evt__coro *c, const void *lo, size_t size, void **pcs, size_t n) {
        uintptr_t hi = (uintptr_t) lo + size;

#if EVT_CORO_UCONTEXT && defined(__x86_64__) && defined(__GLIBC__)
        /* swapcontext saved its return address and its caller's rbp. */
        const greg_t *g = c->uc.uc_mcontext.gregs;
        uintptr_t sp = (uintptr_t) g[REG_RSP];

        if (sp < (uintptr_t) lo || sp >= hi)
                return 0;
        return (int) fp_walk((uintptr_t) g[REG_RIP], (uintptr_t) g[REG_RBP], sp, hi, pcs, n);
#elif EVT_CORO_UCONTEXT
        (void) c, (void) hi, (void) pcs, (void) n;
        return -ENOTSUP;
#else
        /* The switch's frame, as its .S file stores it: the return address
         * into evt__coro_switch and that function's frame pointer. */
        uintptr_t sp = (uintptr_t) c->sp;
        const uintptr_t *w = (const uintptr_t *) sp;

        if (sp % sizeof(uintptr_t) || sp < (uintptr_t) lo || sp > hi - FRAME_WORDS * sizeof(uintptr_t))
                return 0;
#if defined(__x86_64__)
        return (int) fp_walk(w[6], w[5], sp, hi, pcs, n);
#elif defined(__aarch64__)
        return (int) fp_walk(w[11], w[10], sp, hi, pcs, n);
#else
        return (int) fp_walk(w[0], w[1], sp, hi, pcs, n);
#endif
#endif
}
