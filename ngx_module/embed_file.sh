#!/bin/sh
# embed_file.sh NAME FILE: writes to stdout a C header holding FILE's bytes
# as "static u_char NAME[]" followed by a NUL (sizeof(NAME) - 1 is FILE's
# size), so a page kept as a real file (dashboard.html) is compiled into
# the module.  POSIX sh and od only: nothing beyond what nginx's build has.
set -e

name=$1
file=$2

printf '/* Generated from %s by embed_file.sh: do not edit. */\n\n' \
    "${file##*/}"
printf 'static u_char  %s[] = {\n' "$name"
od -An -v -w12 -tx1 "$file" \
    | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1, /g' -e 's/^/    /' -e 's/ *$//'
printf '    0x00\n};\n'
