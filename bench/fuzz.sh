#!/usr/bin/env bash
# A long property-test run over generated Obsidian notes (tests/test_fuzz.py): CI runs 150
# examples per property; this runs ${1:-5000} (about 40 minutes on 2 cores). Usage: bench/fuzz.sh [EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
NOTEEXEC_FUZZ_EXAMPLES="${1:-5000}" exec python3 -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
  --hypothesis-show-statistics
