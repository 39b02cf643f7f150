/* Naming the frames of a task's backtrace: each function by name, static
 * ones too where the daemon is built with libdw, and always the object and
 * an address in it that addr2line can take; without libdw, or where it
 * knows nothing, the dynamic symbols dladdr finds. */
#include <dlfcn.h>
#include <elf.h>
#include <inttypes.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if EVD_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

#include "symbols.h"

#if EVD_HAVE_LIBDW
/* The standard search for separate debug files (by build ID, then by
 * debuglink), but never through debuginfod: with DEBUGINFOD_URLS in the
 * daemon's environment, libdw would download on the loop. Then only the
 * debug files installed by build ID (Debian's -dbgsym packages). */
static int find_debuginfo_here(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                               const char *file, const char *debuglink, GElf_Word crc, char **name) {
        const char *urls = getenv("DEBUGINFOD_URLS");

        if (urls && *urls)
                return dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file, debuglink, crc, name);
        return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file, debuglink, crc, name);
}

static const Dwfl_Callbacks proc_callbacks = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = find_debuginfo_here,
};

/* The session over this process's mappings, made once per dump. */
static Dwfl *symbols_dwfl(evd_symbols *s) {
        Dwfl *dwfl;

        if (s->tried)
                return s->dwfl;
        s->tried = true;
        dwfl = dwfl_begin(&proc_callbacks);
        if (!dwfl)
                return NULL;
        dwfl_report_begin(dwfl);
        if (dwfl_linux_proc_report(dwfl, getpid()) != 0 || dwfl_report_end(dwfl, NULL, NULL) != 0) {
                dwfl_end(dwfl);
                return NULL;
        }
        s->dwfl = dwfl;
        return dwfl;
}

/* "NAME+0xOFF" or "NAME+0xOFF at FILE:LINE" for call, into buf; left
 * as it is where libdw knows no function there. */
static void dwfl_name(evd_symbols *s, const char *call, char *buf, size_t len) {
        Dwfl *dwfl = symbols_dwfl(s);
        Dwarf_Addr at = (Dwarf_Addr) (uintptr_t) call;
        Dwfl_Module *mod = dwfl ? dwfl_addrmodule(dwfl, at) : NULL;
        GElf_Off off;
        GElf_Sym sym;
        const char *name = mod ? dwfl_module_addrinfo(mod, at, &off, &sym, NULL, NULL, NULL) : NULL;
        Dwfl_Line *line;
        const char *file = NULL;
        int lineno = 0;

        if (!name)
                return;
        line = dwfl_module_getsrc(mod, at);
        if (line)
                file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file && lineno > 0)
                snprintf(buf, len, "%s+0x%" PRIx64 " at %s:%d", name, (uint64_t) off, file, lineno);
        else
                snprintf(buf, len, "%s+0x%" PRIx64, name, (uint64_t) off);
}
#endif

static void name_frame(evd_symbols *s, const void *pc, char *buf, size_t len) {
        /* pc is where the call returns to; the call is the byte before. */
        const char *call = (const char *) pc - 1;
        uintptr_t at = (uintptr_t) call;
        char name[384] = "";
        Dl_info info;
        bool known = dladdr(call, &info) && info.dli_fname && info.dli_fbase;

#if EVD_HAVE_LIBDW
        dwfl_name(s, call, name, sizeof(name));
#else
        (void) s;
#endif
        if (!name[0] && known && info.dli_sname && info.dli_saddr)
                snprintf(name, sizeof(name), "%s+0x%tx", info.dli_sname, call - (const char *) info.dli_saddr);
        if (!known) {
                if (name[0])
                        snprintf(buf, len, "%s (%p)", name, (const void *) call);
                else
                        snprintf(buf, len, "%p", (const void *) call);
                return;
        }
        if (((const ElfW(Ehdr) *) info.dli_fbase)->e_type == ET_DYN)
                at -= (uintptr_t) info.dli_fbase;
        if (name[0])
                snprintf(buf, len, "%s (%s+0x%" PRIxPTR ")", name, info.dli_fname, at);
        else
                snprintf(buf, len, "%s+0x%" PRIxPTR, info.dli_fname, at);
}

/* The names made in this dump, by return address: the tasks of a dump are
 * parked at a few places, and libdw looks a symbol up by scanning the
 * whole table. Direct-mapped; a collision names the frame again. */
#define CACHE_SLOTS 256

struct evd_symbol_slot {
        const void *pc;
        char text[EVD_SYMBOL_MAX];
};

static struct evd_symbol_slot *cache_slot(evd_symbols *s, const void *pc) {
        if (!s->cache)
                s->cache = calloc(CACHE_SLOTS, sizeof(*s->cache));
        if (!s->cache)
                return NULL;
        return &s->cache[(((uint64_t) (uintptr_t) pc * UINT64_C(0x9e3779b97f4a7c15)) >> 32) % CACHE_SLOTS];
}

void evd_symbolize(evd_symbols *s, const void *pc, char *buf, size_t len) {
        struct evd_symbol_slot *slot = cache_slot(s, pc);

        if (slot && slot->pc == pc && slot->text[0]) {
                snprintf(buf, len, "%s", slot->text);
                return;
        }
        name_frame(s, pc, buf, len);
        if (slot) {
                slot->pc = pc;
                snprintf(slot->text, sizeof(slot->text), "%s", buf);
        }
}

void evd_symbols_done(evd_symbols *s) {
        free(s->cache);
#if EVD_HAVE_LIBDW
        if (s->dwfl)
                dwfl_end(s->dwfl);
#endif
        *s = (evd_symbols) { 0 };
}
