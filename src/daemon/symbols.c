/* Naming the frames of a task's backtrace with what the process knows by
 * itself: dladdr's dynamic symbols, and otherwise the object and an address
 * in it that addr2line can take. No unwinder or debug-info library: the
 * daemon holds no symbol tables, and whoever reads a dump has the binaries
 * (and addr2line) at hand. */
#include <dlfcn.h>
#include <elf.h>
#include <inttypes.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>

#include "symbols.h"

void evd_symbolize(const void *pc, char *buf, size_t len) {
        /* pc is where the call returns to; the call is the byte before. */
        const char *call = (const char *) pc - 1;
        uintptr_t at = (uintptr_t) call;
        Dl_info info;

        if (!dladdr(call, &info) || !info.dli_fname || !info.dli_fbase) {
                snprintf(buf, len, "%p", (const void *) call);
                return;
        }
        if (((const ElfW(Ehdr) *) info.dli_fbase)->e_type == ET_DYN)
                at -= (uintptr_t) info.dli_fbase;
        if (info.dli_sname && info.dli_saddr)
                snprintf(buf, len, "%s+0x%tx (%s+0x%" PRIxPTR ")", info.dli_sname,
                         call - (const char *) info.dli_saddr, info.dli_fname, at);
        else
                snprintf(buf, len, "%s+0x%" PRIxPTR, info.dli_fname, at);
}
