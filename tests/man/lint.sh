#!/bin/sh
# Lints the manual pages: groff's warnings must be silent, and so must
# mandoc -Tlint where mandoc is installed. groff runs with -wall plus -wmac:
# "all" leaves out undefined macros, which are the typos that matter here.
#
# Usage: lint.sh [DIR]  (default: the source tree's man/). Every page named
# NAME.N (N a section digit) in DIR is checked. Exit status 0 when all are
# clean, 1 otherwise, 77 (skipped) without groff.
set -u

dir=${1:-$(dirname "$0")/../../man}

if ! command -v groff >/dev/null 2>&1; then
        echo "SKIP: groff not found (Debian: groff-base)"
        exit 77
fi
have_mandoc=0
if command -v mandoc >/dev/null 2>&1; then
        have_mandoc=1
else
        echo "note: mandoc not found (Debian: mandoc); checking with groff only"
fi

status=0
pages=0
for page in "$dir"/*.[1-9]; do
        [ -f "$page" ] || continue
        pages=$((pages + 1))

        out=$(groff -wall -wmac -man -Tutf8 "$page" 2>&1 >/dev/null)
        rc=$?
        if [ $rc -ne 0 ] || [ -n "$out" ]; then
                echo "FAIL: groff -wall -wmac -man -Tutf8 $page (exit $rc):"
                printf '%s\n' "$out"
                status=1
        else
                echo "ok: groff $page"
        fi

        [ $have_mandoc -eq 1 ] || continue
        out=$(mandoc -Tlint -W style "$page" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || [ -n "$out" ]; then
                echo "FAIL: mandoc -Tlint $page (exit $rc):"
                printf '%s\n' "$out"
                status=1
        else
                echo "ok: mandoc $page"
        fi
done

if [ $pages -eq 0 ]; then
        echo "FAIL: no manual pages in $dir"
        exit 1
fi
[ $have_mandoc -eq 1 ] || echo "mandoc -Tlint skipped: mandoc is not installed"
exit $status
