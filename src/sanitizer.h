/* What the coroutine code tells ASan, TSan and valgrind about its stacks,
 * so they stay silent on correct code, and what the slab tells them about
 * its objects. Empty where none is present. */
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define EVT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVT__ASAN 1
#endif
#endif

#if EVT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EVT__ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define EVT__ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
/* For code that reads another context's stack: its frames lie between
 * ASan's redzones, and may be poisoned as a whole while it is parked. */
#define EVT__NO_ASAN __attribute__((no_sanitize_address))
#else
#define EVT__ASAN_UNPOISON(p, n) ((void) (p), (void) (n))
#define EVT__ASAN_POISON(p, n) ((void) (p), (void) (n))
#define EVT__NO_ASAN
#endif

#if defined(__SANITIZE_THREAD__)
#define EVT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVT__TSAN 1
#endif
#endif

#if EVT__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EVT__VALGRIND_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define EVT__VALGRIND_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#define EVT__ON_VALGRIND() RUNNING_ON_VALGRIND
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define EVT__VALGRIND_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define EVT__VALGRIND_UNDEFINED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#endif
#endif
#ifndef EVT__VALGRIND_NOACCESS
#define EVT__VALGRIND_NOACCESS(p, n) ((void) (p), (void) (n))
#define EVT__VALGRIND_UNDEFINED(p, n) ((void) (p), (void) (n))
#endif
#ifndef EVT__VALGRIND_STACK_REGISTER
#define EVT__VALGRIND_STACK_REGISTER(lo, hi) ((void) (lo), (void) (hi), 0u)
#define EVT__VALGRIND_STACK_DEREGISTER(id) ((void) (id))
#define EVT__ON_VALGRIND() 0
#endif
