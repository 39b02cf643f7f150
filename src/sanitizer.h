/* What the coroutine code tells ASan, TSan and valgrind about its stacks,
 * so they stay silent on correct code. Empty where none is present. */
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
#else
#define EVT__ASAN_UNPOISON(p, n) ((void) (p), (void) (n))
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
#endif
#ifndef EVT__VALGRIND_STACK_REGISTER
#define EVT__VALGRIND_STACK_REGISTER(lo, hi) ((void) (lo), (void) (hi), 0u)
#define EVT__VALGRIND_STACK_DEREGISTER(id) ((void) (id))
#define EVT__ON_VALGRIND() 0
#endif
