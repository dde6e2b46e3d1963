#!/usr/bin/env bash
# System packages the build needs, installed from Debian's packages.
# The README and .ci/run both call this; it is safe to run again.
# Today the workspace needs only the Rust toolchain and a C compiler
# (ring builds a little C), which every machine of this kind has.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
