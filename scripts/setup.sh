#!/usr/bin/env bash
# System packages the build needs, installed from Debian's packages.
# The README and .ci/run both call this; it is safe to run again.
#   gcc                     ring (TLS) builds a little C
#   cmake, clang, libclang  highs-sys builds the HiGHS MILP solver (optimizer)
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
# bindgen loads libclang.so at build time; Debian ships it in libclang-dev.
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
   && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
