#!/usr/bin/env bash
# The large fuzz run: FUZZ_CASES (default 10000) mutated inputs per command
# (validate, simulate, optimize --demand, optimize --catalog, report) on the
# release build, each under 4 GiB of address space and a time bound. Prints
# per command how many cases exited 0, 1 and 2, and the failures (their
# files are kept). FUZZ_SEED picks another stream of mutations.
#
#   bash scripts/fuzz.sh                 # 10,000 per command, about 25 min
#   FUZZ_CASES=2000 FUZZ_SEED=7 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_CASES=${FUZZ_CASES:-10000} cargo test --release --locked --test fuzz -- --nocapture 2>&1 \
  | grep -E '^fuzz |failing cases|case [0-9]+ |^test result'
