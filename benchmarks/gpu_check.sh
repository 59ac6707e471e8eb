#!/usr/bin/env bash
# minidl's one-shot GPU check (issue 9, item 5): run it first whenever an NVIDIA GPU is at hand.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh [project-dir]     # default project: this repository
#
# Under 8 minutes on one H200 (BUDGET seconds in all, default 450).  Each part has its own timeout
# (the smaller of its cap and what is left of the budget; a part that would get under 20 s is skipped
# and says so), and all output goes under $OUT (default ./gpu_check_out): one log per part, the JSON
# line of each benchmark, and summary.txt.  Parts, in priority order:
#   00_env              GPU, driver and package versions (read-only nvidia-smi queries)
#   01_import           minidl from this tree, CuPy, the GPU minidl sees
#   02_pytest_gpu       pytest -m gpu: the GPU tests, and every stand-in test of the device path on the GPU
#   03_bench_fp32       benchmarks/train_step.py resnet18 (CIFAR) cuda batch 128 --compare torch, fp32, per-op profile
#   04_bench_bf16       ... --precision bf16
#   05_bench_tf32       ... --precision tf32
#   06_kernels_vs_ref   minidl's kernels against its generic CuPy reference, same step, one process, per-op profiles
#   07_pytest_rest      the rest of the suite (-m "not gpu") with whatever time is left
# pytest parts get SIGINT at their timeout, so pytest still prints what ran.  Nothing here changes GPU
# settings (no nvidia-smi -pm/-lgc/-r ...); no network is used.  Put the figures (GPU, versions, date,
# command) in docs/performance.md.
set -u
PROJECT=$(cd "${1:-$(dirname "$0")/..}" && pwd)
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
PY=${PY:-$(command -v python || command -v python3)}
BUDGET=${BUDGET:-450}
BENCH_STEPS=${BENCH_STEPS:-20}
BENCH_ARGS=${BENCH_ARGS:---model resnet18 --device cuda --batch-size 128}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
export PYTHONPATH="$PROJECT${PYTHONPATH:+:$PYTHONPATH}"  # this tree's minidl, installed or not
: > "$OUT/summary.txt"
note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# part <name> <cap seconds> <signal> <command...>: runs with timeout min(cap, time left), output to $OUT/<name>.log
part() {
  local name=$1 cap=$2 sig=$3; shift 3
  local left=$((DEADLINE - $(date +%s) - 20))  # 20 s: timeout -k grace
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then note "SKIP  $name: only ${left}s of the budget left"; return 0; fi
  note "START $name (timeout ${limit}s) at $(date -u +%H:%M:%S)"
  local t0; t0=$(date +%s)
  (cd "$PROJECT" && timeout -s "$sig" -k 20 "$limit" "$@") > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  note "END   $name rc=$rc ($(($(date +%s) - t0))s)$([ "$rc" = 124 ] && echo ' TIMED OUT')"
}

cat > "$OUT/env.sh" <<ENV
echo "project: \$PWD"; git -C "\$PWD" log -1 --format='commit %H %cd' 2>/dev/null; uname -a; "$PY" --version
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap,clocks.sm,clocks.max.sm --format=csv 2>&1
"$PY" -m pip list 2>/dev/null | grep -i -E "^(cupy|torch|numpy|numba|pytest|hypothesis|nvidia-cu)" 
lscpu 2>/dev/null | grep -E "Model name|^CPU\(s\)"
ENV
part 00_env 40 TERM bash "$OUT/env.sh"
part 01_import 60 TERM "$PY" -c "
import minidl, cupy
print('minidl from', minidl.__file__)
print('cuda available:', minidl.cuda.is_available(), minidl.cuda.get_device_name(), 'cupy', cupy.__version__,
      'runtime', cupy.cuda.runtime.runtimeGetVersion())"

part 02_pytest_gpu 170 INT "$PY" -m pytest -q -m gpu tests -p no:cacheprovider -rfE --tb=short --durations=10 \
  --junitxml="$OUT/02_pytest_gpu.xml"

bench() {  # bench <name> <cap> <train_step.py arguments...>
  local name=$1 cap=$2; shift 2
  # shellcheck disable=SC2086
  part "$name" "$cap" TERM "$PY" benchmarks/train_step.py $BENCH_ARGS --steps "$BENCH_STEPS" "$@"
  grep '^{' "$OUT/$name.log" | tail -n 1 > "$OUT/$name.json" || true
  [ -s "$OUT/$name.json" ] || rm -f "$OUT/$name.json"
}
bench 03_bench_fp32 80 --compare torch --precision fp32 --profile
bench 04_bench_bf16 70 --compare torch --precision bf16 --profile
bench 05_bench_tf32 70 --compare torch --precision tf32 --profile
bench 06_kernels_vs_ref 80 --compare none --precision fp32 --against-reference --blocks 4 --profile

part 07_pytest_rest 600 INT "$PY" -m pytest -q tests -m "not gpu" -p no:cacheprovider -rfE --tb=line --durations=5

note "TOTAL $(($(date +%s) - START))s of a ${BUDGET}s budget; logs in $OUT"
grep -h -E "passed|failed|error" "$OUT/02_pytest_gpu.log" "$OUT/07_pytest_rest.log" 2>/dev/null | tail -n 4 >> "$OUT/summary.txt"
for f in "$OUT"/0[3-6]_*.log; do
  [ -f "$f" ] && grep -h -E "img/s|minidl / PyTorch|kernels .*x|Error" "$f" | head -n 4 >> "$OUT/summary.txt"
done
echo "=== summary"; cat "$OUT/summary.txt"
