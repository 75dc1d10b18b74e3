#!/usr/bin/env bash
# Installs the Debian packages qkv needs that are not installed yet.
# Run as root or with sudo available. Idempotent: with everything present it
# changes nothing and needs no network.
#   scripts/setup.sh           what building, testing and benchmarking need
#   scripts/setup.sh --no-arm  skip the AArch64 cross toolchain and arm64 libraries
set -euo pipefail

arm=1
for arg in "$@"; do
  case "$arg" in
    --no-arm) arm=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

sudo=
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi

# Build and test on this machine.
base=(build-essential meson ninja-build pkg-config python3 libsleef-dev qemu-user valgrind)
# KV sharded across MPI ranks (examples/mpi_attention.c).
mpi=(libopenmpi-dev openmpi-bin)
# What users meet: CMake's find_package, the Python binding (numpy, its
# pytest tests, an offline pip install into a venv), the man page.
user=(cmake python3-numpy python3-pytest python3-venv python3-pip man-db)
# Benchmarks and the report.
bench=(g++ libbenchmark-dev libopenblas-dev gnuplot-nox)
# Reliability jobs: libFuzzer and the sanitizer runtimes come with clang.
reliability=(clang libclang-rt-14-dev)
# AArch64 cross build, run under qemu-aarch64 (arm64 packages via multiarch).
arm_native=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)
arm_foreign=(libsleef-dev:arm64 libbenchmark-dev:arm64)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

want=("${base[@]}" "${mpi[@]}" "${user[@]}" "${bench[@]}" "${reliability[@]}")
if [ "$arm" = 1 ] && [ "$(dpkg --print-architecture)" = amd64 ]; then
  want+=("${arm_native[@]}" "${arm_foreign[@]}")
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
fi

missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
