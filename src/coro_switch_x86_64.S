/* void evt__coro_switch_asm(void **save_sp, void *load_sp)
 *
 * The register-only context switch for x86-64 (System V ABI): push the
 * callee-saved registers, store the stack pointer in *save_sp (%rdi), load
 * load_sp (%rsi), pop the registers saved there and return into the other
 * context. No system call, no signal mask. The frame layout, from the saved
 * stack pointer up: r15 r14 r13 r12 rbx rbp return-address; coro.c builds the
 * first frame of a new context the same way. */
#include "coro_switch_asm.h"

        evt__asm_begin
#if defined(__CET__)
        endbr64
#endif
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        evt__asm_end
