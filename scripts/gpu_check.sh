#!/usr/bin/env bash
# Every GPU check of the speed work, on one CUDA machine, within 8 minutes; JSON under $OUT.
#
#   OUT=/path/to/results scripts/gpu_check.sh            # on a CUDA machine
#   DEVICE=cpu OUT=/tmp/gpu-check scripts/gpu_check.sh   # the dry path: the same steps, CPU-sized (tiny profile)
#
# Steps (each under its own time limit; the script stops starting steps when its budget is spent, and a bench cut
# short still leaves the units it measured, marked "complete": false):
#   1-4. bench --suite paper-table for fp32 and bf16, each without and with --compile (bench-*.json);
#   5.   rehearse --device cuda, when this checkout has the `rehearse` command (rehearse.json / .log);
#   6.   the speed ratio tests on the device: pytest -m benchmark_ratio --benchmark-enable (ratios.json).
# summary.json lists each step with its exit code and seconds. Copy the JSON to results/bench/ and commit it.
set -u

DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-results/bench/gpu-check}"
BUDGET="${BUDGET:-480}"   # seconds for the whole script
PYTHON="${PYTHON:-python}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONPATH="${PYTHONPATH:-.}"
START=$(date +%s)
SUMMARY="$OUT/summary.tsv"
: > "$SUMMARY"

if [ "$DEVICE" = "cpu" ]; then
  # the dry path: tiny models, one timed call per unit; compile only the inversion step (CPU compiles are slow)
  BENCH=(--suite paper-table --profile tiny --device cpu --batch 1 --warmup 0 --repeats 1)
  COMPILE_UNITS=(--units invert_step)
  RATIO_SELECT=(-m "benchmark_ratio and gpu")   # collects the GPU ratio tests, which skip without CUDA
  LIMITS=(60 60 240 240 60 120)
else
  BENCH=(--suite paper-table --device cuda)
  COMPILE_UNITS=(--units invert_step train_step_batched edit_step --warmup 3)
  RATIO_SELECT=(-m benchmark_ratio)
  LIMITS=(100 70 110 80 40 75)
fi

step() {  # step NAME LIMIT COMMAND...: run COMMAND with a time limit, if the budget allows; log rc and seconds
  local name=$1 limit=$2; shift 2
  local now left rc t0
  now=$(date +%s); left=$((BUDGET - (now - START)))
  if [ "$left" -lt 15 ]; then
    printf '%s\tskipped\t0\n' "$name" >> "$SUMMARY"; echo "skip $name: budget spent" >&2; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$SUMMARY"
  echo "$name: exit $rc after $(( $(date +%s) - t0 )) s" >&2
}

bench() {  # bench NAME LIMIT EXTRA...
  local name=$1 limit=$2; shift 2
  step "$name" "$limit" "$PYTHON" run_all.py bench "${BENCH[@]}" --out "$OUT/$name.json" "$@"
}

bench bench-fp32 "${LIMITS[0]}" --precision fp32
bench bench-bf16 "${LIMITS[1]}" --precision bf16
bench bench-fp32-compile "${LIMITS[2]}" --precision fp32 --compile "${COMPILE_UNITS[@]}"
bench bench-bf16-compile "${LIMITS[3]}" --precision bf16 --compile "${COMPILE_UNITS[@]}"

if "$PYTHON" run_all.py rehearse --help > /dev/null 2>&1; then
  step rehearse "${LIMITS[4]}" bash -c "$PYTHON run_all.py rehearse --device $DEVICE --json > '$OUT/rehearse.json'"
else
  printf 'rehearse\tabsent\t0\n' >> "$SUMMARY"; echo "rehearse: no such command in this checkout" >&2
fi

step ratios "${LIMITS[5]}" "$PYTHON" -m pytest tests/models/test_models_speed.py tests/models/test_models_speed_batched.py \
  "${RATIO_SELECT[@]}" --benchmark-enable --benchmark-json "$OUT/ratios.json" -q -p no:cacheprovider

"$PYTHON" - "$SUMMARY" "$OUT/summary.json" "$DEVICE" <<'EOF'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
steps = [{"step": n, "exit": rc, "seconds": int(s)} for n, rc, s in rows]
json.dump({"device": sys.argv[3], "steps": steps}, open(sys.argv[2], "w"), indent=2)
print(json.dumps(steps))
EOF
echo "gpu_check: $(( $(date +%s) - START )) s; results in $OUT" >&2
