#!/bin/sh
# Checks that a deadline is a type of its own: a duration (or any bare
# int64_t) passed where a deadline is expected must not compile, so that
# evt_fd_wait(fd, EVT_READ, EVT_SEC(5), ...) cannot time out at once
# unnoticed; and that the right forms do compile (else the failures would
# prove nothing).
#
# Usage: deadline_type.sh INCLUDE_DIR CC [CC_ARGS...]. Exit status 0 when
# every snippet does what it should, 1 otherwise.
set -u

inc=$1
shift
cc=$*
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

# compiles WANT BODY: WANT is "ok" or "error"; BODY is the body of a
# function with an fd and a deadline d.
compiles() {
        printf '#include <evtask.h>\nint f(int fd, evt_deadline d);\nint f(int fd, evt_deadline d) {\n%s\n}\n' \
                "$2" >"$dir/t.c"
        if $cc -std=gnu11 -Wall -Werror -I"$inc" -c "$dir/t.c" -o "$dir/t.o" >"$dir/out" 2>&1; then
                got=ok
        else
                got=error
        fi
        if [ "$got" = "$1" ]; then
                echo "ok: $1: $2"
        else
                echo "FAIL: expected $1, got $got: $2"
                cat "$dir/out"
                fail=1
        fi
}

compiles ok 'return evt_fd_wait(fd, EVT_READ, evt_deadline_in(EVT_SEC(5)), NULL);'
compiles ok 'return evt_fd_wait(fd, EVT_READ, EVT_FOREVER, NULL) + evt_sleep_until(EVT_NOW);'
compiles ok 'return evt_sleep_until(evt_deadline_at(evt_time_now() + EVT_MSEC(1)));'
compiles ok 'static const evt_deadline never = EVT_FOREVER; (void) fd; return evt_sleep_until(never);'
compiles ok '(void) fd; return evt_deadline_min(d, evt_current_deadline()).at > 0;'
# The mistake itself, and its kin.
compiles error 'return evt_fd_wait(fd, EVT_READ, EVT_SEC(5), NULL);'
compiles error '(void) fd; return evt_sleep_until(evt_time_now() + EVT_MSEC(1));'
compiles error '(void) fd; return evt_sleep_until(0);'
compiles error '(void) fd; int64_t at = evt_deadline_in(EVT_SEC(1)); return at > 0;'
compiles error '(void) fd; return evt_current_deadline() == EVT_FOREVER;'
compiles error '(void) fd; evt_scope *s; return evt_move_on_at(EVT_SEC(1), &s);'
compiles error '(void) fd; return evt_task_join(NULL, EVT_MSEC(10), NULL);'
exit $fail
