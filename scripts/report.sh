#!/usr/bin/env bash
# The benchmark report: installs what is missing, builds qkv_bench in
# build-report/, runs it kind by kind (every ISA of a kind interleaved in one
# process) with progress, and writes one folder
# with the Google Benchmark JSON, a Markdown table (also printed) and PNG plots.
#
#   scripts/report.sh                  default set: every ISA + OpenBLAS, a few minutes
#   scripts/report.sh --quick          tiny shapes, seconds (CI smoke test)
#   scripts/report.sh --full           n up to 16384, kv_len up to 131072, all thread counts
#   scripts/report.sh --filter REGEX   only benchmarks whose name matches (Google Benchmark regex)
#   scripts/report.sh --threads 1,2,4  thread counts of the scaling rows (default 1..nproc)
#   scripts/report.sh --out DIR        output folder (default: report/ in the repository)
#   scripts/report.sh --compare DIR_A DIR_B   ratio table of two report folders
#
# Environment: QKV_REPORT_BUILD (build folder, default build-report),
# QKV_MESON_ARGS (extra `meson setup` options for a fresh build folder),
# QKV_REPORT_NO_SETUP=1 (skip scripts/setup.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
set_name=default
filter=
threads=
out=$root/report
compare=()

# The comment block at the top is the help text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) set_name=quick ;;
    --full) set_name=full ;;
    --filter) filter=${2:?--filter needs a regex}; shift ;;
    --filter=*) filter=${1#*=} ;;
    --threads) threads=${2:?--threads needs a list}; shift ;;
    --threads=*) threads=${1#*=} ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    --out=*) out=${1#*=} ;;
    --compare) compare=("${2:?--compare needs two folders}" "${3:?--compare needs two folders}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "report.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ ${#compare[@]} -eq 2 ]; then
  exec python3 "$root/scripts/report.py" compare "${compare[0]}" "${compare[1]}"
fi

if [ -n "$threads" ] && ! [[ "$threads" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
  echo "report.sh: --threads wants a list like 1,2,4" >&2
  exit 2
fi

if [ "${QKV_REPORT_NO_SETUP:-0}" != 1 ]; then
  # The cross toolchain is not needed for a report.
  "$root/scripts/setup.sh" --no-arm
fi

build=${QKV_REPORT_BUILD:-$root/build-report}
if [ ! -f "$build/build.ninja" ]; then
  echo "report: configuring $build"
  # Tests are not needed here and would only lengthen the first build.
  # shellcheck disable=SC2086
  meson setup "$build" "$root" --buildtype=release -Dbench=enabled -Dopenblas=auto \
    -Dtests=disabled ${QKV_MESON_ARGS:-} >"$build.setup.log" 2>&1 \
    || { cat "$build.setup.log" >&2; exit 1; }
  mv "$build.setup.log" "$build/report-setup.log"
fi
echo "report: building qkv_bench in $build"
# -j2: the machines this runs on are often small and shared.
ninja -C "$build" -j2 bench/qkv_bench || { echo "report: build failed" >&2; exit 1; }

if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  echo "report: note: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE is set, so the OpenBLAS peer runs" \
       "those kernels, not the best it detects for this CPU (unset it for a fair peer)" >&2
fi
mkdir -p "$out"
exec python3 "$root/scripts/report.py" run --bin "$build/bench/qkv_bench" --out "$out" \
  --set "$set_name" --filter "$filter" --threads "$threads"
