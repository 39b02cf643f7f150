/* A return address as evtaskctl dump --stacks shows it (symbols.c). */
#pragma once

#include <stddef.h>

/* Writes where the call before return address pc is: "NAME+0xOFF
 * (OBJECT+0xADDR)" where the dynamic linker knows a name for it (the
 * library's API, a module's exports, libc), else "OBJECT+0xADDR", or the
 * bare address outside every object. ADDR is what addr2line -f -e OBJECT
 * takes, for the static functions dladdr cannot name: the offset in a
 * shared object or a PIE, the address in a fixed executable. */
void evd_symbolize(const void *pc, char *buf, size_t len);
