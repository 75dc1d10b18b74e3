#!/usr/bin/env bash
# What a user of an installed qkv does, each path checked end to end:
#   - configure without SLEEF: meson setup fails and says what to do;
#     -Dsimd=disabled configures a scalar-only build
#   - a library-only build (-Dtests=disabled -Dbench=disabled) installed
#     with --prefix: the multiarch libdir, pkg-config then LD_LIBRARY_PATH
#     or an rpath (and without either, the loader error the README names),
#     static linking through qkv-static.pc, `pkg-config --static qkv`
#   - CMake: find_package(qkv) with qkv::qkv, qkv::qkv_static, from C and C++
#   - the installed `qkv` command and its man page
#   - the Python binding: pip install ./python offline into a venv that sees
#     Debian's numpy, then the tutorial's example and the pytest suite
#     against the installed library
#   scripts/test-install.sh      (JOBS=N for ninja -j, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n--- %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }
seed_ok() { grep -q '0.577681 0.844638 0.155362 0.422319'; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step "without SLEEF: meson setup fails and names the fix"
if PKG_CONFIG_LIBDIR=$work/none meson setup "$work/nosleef" -Dtests=disabled -Dbench=disabled \
     >"$work/nosleef.log" 2>&1; then
  echo "FAIL: meson setup without SLEEF succeeded"; exit 1
fi
grep -q 'apt install libsleef-dev' "$work/nosleef.log"
grep -q -- '-Dsimd=disabled' "$work/nosleef.log"
grep 'ERROR' "$work/nosleef.log"
run env PKG_CONFIG_LIBDIR="$work/none" meson setup "$work/nosleef2" -Dsimd=disabled -Dtests=disabled \
  -Dbench=disabled >"$work/nosleef2.log"
grep -q 'ISAs built *: scalar$' "$work/nosleef2.log"
echo "ok: -Dsimd=disabled gives a scalar-only build"

step "library-only build, installed into $prefix"
run meson setup "$work/build" --prefix="$prefix" -Dtests=disabled -Dbench=disabled --werror \
  >"$work/setup.log"
run ninja -C "$work/build" -j"${JOBS:-2}" >/dev/null
run meson install -C "$work/build" --quiet
pcdir=$(dirname "$(find "$prefix" -name qkv.pc)")
libdir=$(dirname "$pcdir")
echo "libdir: $libdir"
if multiarch=$(gcc -print-multiarch 2>/dev/null) && [ -n "$multiarch" ]; then
  # Debian's Meson installs into the multiarch libdir: P/lib alone finds nothing.
  [ "$libdir" = "$prefix/lib/$multiarch" ]
fi
for f in include/qkv.h bin/qkv share/man/man1/qkv.1; do
  [ -f "$prefix/$f" ] || { echo "FAIL: $prefix/$f not installed"; exit 1; }
done
[ -f "$libdir/libqkv.a" ] && [ -f "$libdir/cmake/qkv/qkvConfig.cmake" ] \
  && [ -f "$libdir/cmake/qkv/qkvConfigVersion.cmake" ]
export PKG_CONFIG_PATH=$pcdir
cflags=(-std=c11 -Wall -Wextra -Werror)

step "pkg-config, then LD_LIBRARY_PATH or an rpath"
# shellcheck disable=SC2046
run cc "${cflags[@]}" examples/seed.c -o "$work/seed" $(pkg-config --cflags --libs qkv)
if env -u LD_LIBRARY_PATH "$work/seed" >/dev/null 2>"$work/noload.txt"; then
  echo "FAIL: ran without LD_LIBRARY_PATH or rpath (was $libdir already a system path?)"; exit 1
fi
grep -q 'libqkv.so.0: cannot open shared object file' "$work/noload.txt"
echo "ok: without either it fails as the README says"
LD_LIBRARY_PATH=$libdir "$work/seed" | tee "$work/seed.out"
seed_ok <"$work/seed.out"
# shellcheck disable=SC2046
run cc "${cflags[@]}" examples/seed.c -o "$work/seed_rpath" $(pkg-config --cflags --libs qkv) \
  -Wl,-rpath,"$libdir"
env -u LD_LIBRARY_PATH "$work/seed_rpath" | seed_ok
echo "ok: rpath"

step "static: libqkv.a with the shared SLEEF"
# shellcheck disable=SC2046
run cc "${cflags[@]}" examples/seed.c -o "$work/seed_static" $(pkg-config --cflags --libs qkv-static)
env -u LD_LIBRARY_PATH "$work/seed_static" | seed_ok
if ldd "$work/seed_static" | grep -q libqkv; then
  echo "FAIL: seed_static loads libqkv.so"; exit 1
fi
# The plain pkg-config file names SLEEF, libm and pthreads for --static.
static_libs=$(pkg-config --static --libs qkv)
echo "pkg-config --static --libs qkv: $static_libs"
for lib in -lqkv -lm -pthread; do grep -q -- "$lib" <<<"$static_libs"; done
if grep -q 'QKV_HAVE_AVX2 1\|QKV_HAVE_NEON 1' "$work/build/qkv_config.h"; then
  grep -q -- -lsleef <<<"$static_libs"
fi
# The README's command without pkg-config.
run cc "${cflags[@]}" -I"$prefix/include" examples/seed.c "$libdir/libqkv.a" -lsleef -lm -pthread \
  -o "$work/seed_static2"
"$work/seed_static2" | seed_ok
echo "ok: static"
unset PKG_CONFIG_PATH

step "CMake: find_package(qkv) from C and C++, shared and static"
run cmake -S tests/cmake-consumer -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" || { cat "$work/cmake.log"; exit 1; }
grep 'qkv 0.2' "$work/cmake.log"
run cmake --build "$work/cmake" -j"${JOBS:-2}" >/dev/null
env -u LD_LIBRARY_PATH "$work/cmake/seed" | seed_ok
env -u LD_LIBRARY_PATH "$work/cmake/seed_static" | seed_ok
if ldd "$work/cmake/seed_static" | grep -q libqkv; then
  echo "FAIL: the qkv::qkv_static program loads libqkv.so"; exit 1
fi
env -u LD_LIBRARY_PATH "$work/cmake/cxx_user"
# A version this package does not promise to match is refused.
mkdir -p "$work/cmake-old"
printf 'cmake_minimum_required(VERSION 3.16)\nproject(p C)\nfind_package(qkv 0.1 CONFIG REQUIRED)\n' \
  >"$work/cmake-old/CMakeLists.txt"
if cmake -S "$work/cmake-old" -B "$work/cmake-old/b" -DCMAKE_PREFIX_PATH="$prefix" \
     >/dev/null 2>&1; then
  echo "FAIL: find_package(qkv 0.1) accepted 0.2"; exit 1
fi
echo "ok: CMake"

step "the installed qkv command"
run "$prefix/bin/qkv" info
run "$prefix/bin/qkv" bench --heads 8/2 --q-len 1 --kv-len 1024 --dim 64 --repeats 3 --no-probe
# Taken whole first: `man | grep -q` under pipefail fails whenever grep
# quits on its match before man has written the rest (SIGPIPE).
manpage=$(man -l "$prefix/share/man/man1/qkv.1" 2>/dev/null || true)
grep -q 'qkv bench' <<<"$manpage" || \
  { command -v man >/dev/null && { echo "FAIL: man page"; exit 1; }; }
echo "ok: qkv command"

step "Python: pip install ./python (offline) into a venv, against the installed library"
py=/usr/bin/python3
run "$py" -m venv --system-site-packages "$work/venv"
run env PIP_NO_INDEX=1 "$work/venv/bin/pip" install --quiet --disable-pip-version-check ./python
cd "$work"      # not the source tree: the installed package must be the one imported
run env LD_LIBRARY_PATH="$libdir" "$work/venv/bin/python" -c \
  "import qkv; assert 'site-packages' in qkv.__file__, qkv.__file__; print(qkv.__file__, qkv.library_path, qkv.isas())"
run env LD_LIBRARY_PATH="$libdir" "$work/venv/bin/python" "$root/examples/seed.py" | tee "$work/seed_py.out"
grep -q '\[0.577681 0.844638 0.155362 0.422319\]' "$work/seed_py.out"
run env LD_LIBRARY_PATH="$libdir" QKV_INCLUDE="$prefix/include" "$work/venv/bin/python" -m pytest -q \
  -p no:cacheprovider "$root/python/tests"
cd "$root"
echo "ok: Python"
