#!/usr/bin/env bash
# System packages the build needs, installed from Debian's packages.
# The README and .ci/run both call this; it is safe to run again.
#   gcc                     ring (TLS) builds a little C
#   cmake, clang, libclang  highs-sys builds the HiGHS MILP solver (optimizer)
# and, from PyPI, the checker the tests run on `loadtest k8s render`'s output:
#   kubernetes-validate     the Kubernetes API's JSON schemas (strict), offline
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

# The schema checker for the rendered Kubernetes manifests (tests/distributed.rs).
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.31.0
fi
