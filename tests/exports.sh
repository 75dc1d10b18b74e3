#!/bin/sh
# libqkv.so exports exactly the public API: the functions include/qkv.h marks
# QKV_API, no more (internal kernels, tables and CPU probes stay hidden, so
# no program can come to depend on them) and no fewer (a declared function
# the library does not define is a link error for its users).
#   exports.sh NM LIBQKV_SO QKV_H
set -eu
if [ $# -ne 3 ]; then
  echo "usage: exports.sh NM LIBQKV_SO QKV_H" >&2
  exit 2
fi
nm=$1 lib=$2 header=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A declaration starts its line with QKV_API and names the function before
# its first parenthesis: "QKV_API const char *qkv_isa_name(qkv_isa isa);".
sed -n 's/^QKV_API[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' "$header" |
  sort -u >"$tmp/declared"
"$nm" -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sed 's/@.*//' |
  sort -u >"$tmp/exported"

# Every QKV_API line must have given a name, or the list above is short.
if [ "$(grep -c '^QKV_API' "$header")" -ne "$(wc -l <"$tmp/declared")" ] || [ ! -s "$tmp/declared" ]; then
  echo "exports: could not read every QKV_API declaration of $header" >&2
  exit 1
fi
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
echo "exports: $(wc -l <"$tmp/declared") QKV_API functions in $(basename "$header"), $(wc -l <"$tmp/exported") symbols exported by $(basename "$lib")"
status=0
if [ -n "$extra" ]; then
  echo "FAIL: exported but not public API (give them hidden visibility):"
  echo "$extra" | sed 's/^/  /'
  status=1
fi
if [ -n "$missing" ]; then
  echo "FAIL: declared QKV_API in the header but not exported (undefined, or hidden):"
  echo "$missing" | sed 's/^/  /'
  status=1
fi
[ "$status" = 0 ] && echo "exports: exactly the public API"
exit "$status"
