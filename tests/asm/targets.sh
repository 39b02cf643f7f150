#!/bin/sh
# Assembles every register-only switch (src/coro_switch_CPU.S) for every
# object format and system it is meant for, with clang's integrated
# assembler, which needs no SDK: ELF for Linux and FreeBSD, Mach-O for
# macOS (the leading underscore, no .type/.size/.note). No machine here
# runs those systems; this keeps their assembly building. Checks that the
# switch is the one symbol, under the name the C code calls.
#
# Usage: targets.sh [SRCDIR]. Exit 0 when all assemble, 1 otherwise, 77
# (skipped) without clang.
set -u

src=${1:-$(dirname "$0")/../../src}
if ! command -v clang >/dev/null 2>&1; then
        echo "SKIP: clang not found (Debian: clang)"
        exit 77
fi
nm=$(command -v llvm-nm || ls /usr/bin/llvm-nm-* 2>/dev/null | head -n 1)

out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
status=0
for pair in x86_64:x86_64-linux-gnu x86_64:x86_64-unknown-freebsd x86_64:x86_64-apple-macos11 \
            aarch64:aarch64-linux-gnu aarch64:aarch64-unknown-freebsd aarch64:arm64-apple-macos11 \
            riscv64:riscv64-linux-gnu riscv64:riscv64-unknown-freebsd; do
        cpu=${pair%%:*}
        target=${pair#*:}
        obj=$out/$target.o
        if ! err=$(clang --target="$target" -c "$src/coro_switch_$cpu.S" -o "$obj" 2>&1); then
                echo "FAIL: $cpu for $target:"
                echo "$err"
                status=1
                continue
        fi
        case $target in
        *apple*) want=_evt__coro_switch_asm ;;
        *)       want=evt__coro_switch_asm ;;
        esac
        if [ -n "$nm" ] && [ "$("$nm" --defined-only --extern-only -j "$obj")" != "$want" ]; then
                echo "FAIL: $cpu for $target defines $("$nm" --defined-only --extern-only -j "$obj" | tr '\n' ' '), not $want"
                status=1
                continue
        fi
        echo "ok: $cpu for $target"
done
exit $status
