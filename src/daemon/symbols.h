/* A return address as evtaskctl dump --stacks shows it (symbols.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* What one dump knows of the process's symbols: the names it made, and
 * with libdw a session over the process's mappings made at the first frame
 * (reading the objects' symbol tables is not cheap), both freed by
 * evd_symbols_done. Zero is a fresh one. */
typedef struct evd_symbols {
        void *dwfl;             /* Dwfl *, or NULL */
        bool tried;             /* dwfl was made, or could not be */
        struct evd_symbol_slot *cache;  /* names made, by return address */
} evd_symbols;

/* A frame's name, the terminating NUL included, is cut beyond this. */
#define EVD_SYMBOL_MAX 512

/* Writes where the call before return address pc is: "NAME+0xOFF [at
 * FILE:LINE] (OBJECT+0xADDR)" where a name is known, else
 * "OBJECT+0xADDR", or the bare address outside every object. With libdw
 * (EVD_HAVE_LIBDW) every function has its name, static ones included, and
 * its line where the object has debug information; without, dladdr names
 * what the dynamic linker knows (the library's API, a module's exports,
 * libc). ADDR is what addr2line -f -e OBJECT takes: the offset in a shared
 * object or a PIE, the address in a fixed executable. */
void evd_symbolize(evd_symbols *s, const void *pc, char *buf, size_t len);

/* Ends what evd_symbolize made; s is fresh again. */
void evd_symbols_done(evd_symbols *s);
