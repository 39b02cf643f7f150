/* What the coro_switch_*.S files share around their instructions: one
 * symbol hidden from the library's users, marked a function for debuggers,
 * with unwind information, and a stack that is not executable; in ELF
 * (Linux, the BSDs) or Mach-O (macOS: C names take a leading underscore;
 * there is no .type, .size or .note section). Assembler macros rather than
 * multi-line C macros: Apple's arm64 assembler reads ';' as a comment. For
 * the assembler's preprocessor. */
#pragma once

#if defined(__APPLE__)
#define EVT__ASM_NAME _evt__coro_switch_asm
#define EVT__ASM_HIDDEN .private_extern EVT__ASM_NAME
#define EVT__ASM_TYPE
#define EVT__ASM_SIZE
#define EVT__ASM_NOTES
#else
#define EVT__ASM_NAME evt__coro_switch_asm
#define EVT__ASM_HIDDEN .hidden EVT__ASM_NAME
#define EVT__ASM_TYPE .type EVT__ASM_NAME, %function
#define EVT__ASM_SIZE .size EVT__ASM_NAME, .-EVT__ASM_NAME
#define EVT__ASM_NOTES .section .note.GNU-stack, "", %progbits
#endif

.macro evt__asm_begin
        .text
        .globl  EVT__ASM_NAME
        EVT__ASM_HIDDEN
        EVT__ASM_TYPE
        .p2align 4
EVT__ASM_NAME:
        .cfi_startproc
.endm

.macro evt__asm_end
        .cfi_endproc
        EVT__ASM_SIZE
        EVT__ASM_NOTES
.endm
