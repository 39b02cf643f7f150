/* void evt__coro_switch_asm(void **save_sp, void *load_sp)
 *
 * The register-only context switch for AArch64 (AAPCS64): store the
 * callee-saved registers below the stack pointer, store the stack pointer
 * in *save_sp (x0), load load_sp (x1), load the registers saved there and
 * return through the loaded link register into the other context. No
 * system call, no signal mask. The 160-byte frame, from the saved stack
 * pointer up: x19..x28, x29 (fp), x30 (lr, where ret goes), d8..d15 (only
 * their low 64 bits are callee-saved). coro.c builds the first frame of a
 * new context the same way. x18 is the platform's (Apple's, Android's) and
 * is left alone. */
#include "coro_switch_asm.h"

        evt__asm_begin
#if defined(__ARM_FEATURE_BTI_DEFAULT)
        hint    #34                     /* bti c: a valid indirect call target */
#endif
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        evt__asm_end
