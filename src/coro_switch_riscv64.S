/* void evt__coro_switch_asm(void **save_sp, void *load_sp)
 *
 * The register-only context switch for RV64 (LP64D, or LP64 without the
 * float registers): store the callee-saved registers below the stack
 * pointer, store the stack pointer in *save_sp (a0), load load_sp (a1),
 * load the registers saved there and return through the loaded ra into the
 * other context. No system call, no signal mask. The 208-byte frame (16-byte
 * aligned), from the saved stack pointer up: ra (where ret goes), s0 (fp)
 * ..s11, fs0..fs11. coro.c builds the first frame of a new context the same
 * way. gp and tp are the thread's, not a context's. */
#include "coro_switch_asm.h"

        evt__asm_begin
        addi    sp, sp, -208
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        sd      s6, 56(sp)
        sd      s7, 64(sp)
        sd      s8, 72(sp)
        sd      s9, 80(sp)
        sd      s10, 88(sp)
        sd      s11, 96(sp)
#if defined(__riscv_float_abi_double)
        fsd     fs0, 104(sp)
        fsd     fs1, 112(sp)
        fsd     fs2, 120(sp)
        fsd     fs3, 128(sp)
        fsd     fs4, 136(sp)
        fsd     fs5, 144(sp)
        fsd     fs6, 152(sp)
        fsd     fs7, 160(sp)
        fsd     fs8, 168(sp)
        fsd     fs9, 176(sp)
        fsd     fs10, 184(sp)
        fsd     fs11, 192(sp)
#endif
        sd      sp, 0(a0)
        mv      sp, a1
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        ld      s6, 56(sp)
        ld      s7, 64(sp)
        ld      s8, 72(sp)
        ld      s9, 80(sp)
        ld      s10, 88(sp)
        ld      s11, 96(sp)
#if defined(__riscv_float_abi_double)
        fld     fs0, 104(sp)
        fld     fs1, 112(sp)
        fld     fs2, 120(sp)
        fld     fs3, 128(sp)
        fld     fs4, 136(sp)
        fld     fs5, 144(sp)
        fld     fs6, 152(sp)
        fld     fs7, 160(sp)
        fld     fs8, 168(sp)
        fld     fs9, 176(sp)
        fld     fs10, 184(sp)
        fld     fs11, 192(sp)
#endif
        addi    sp, sp, 208
        ret
        evt__asm_end
