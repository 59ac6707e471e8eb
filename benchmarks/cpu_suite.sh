#!/usr/bin/env bash
# The CPU measurements of issue 13 in one go, for a quiet machine (run it when nothing else runs: check
# `uptime`'s load average before and after, and repeat the whole script at least twice).
#
#     bash benchmarks/cpu_suite.sh [output-folder]        # default: runs/cpu_suite-<date>
#
# Every training line alternates minidl and PyTorch in 4 blocks (--blocks 4) and prints the ratio of the
# median steps; the JSON lines go to <output-folder>/*.jsonl, the printed lines to summary.txt.  Record the
# figures in docs/performance.md with the machine lines this script writes first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${1:-runs/cpu_suite-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
summary="$out/summary.txt"

{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
    lscpu | grep -E "Model name|Vendor ID|^CPU\(s\)|Thread\(s\) per core|L2 cache|L3 cache"
    echo "SIMD flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(fma|avx2|avx512.*)$' | tr '\n' ' ')"
    python3 -c "import numpy, numba, torch, llvmlite.binding as l; from minidl.backends.cpu import simd; \
print('numpy', numpy.__version__, '| numba', numba.__version__, '| torch', torch.__version__, \
'| LLVM host', l.get_host_cpu_name(), '| minidl SIMD width', simd.HOST_WIDTH)"
} | tee "$summary"

run() {  # run <name> <train_step.py arguments...>
    local name="$1"
    shift
    echo "## $name: python3 benchmarks/train_step.py $*" | tee -a "$summary"
    python3 benchmarks/train_step.py --compare torch --blocks 4 "$@" | tee -a "$out/$name.log" \
        | grep -E "img/s|minidl / PyTorch" | tee -a "$summary"
    tail -n 1 "$out/$name.log" >> "$out/train_step.jsonl"
}

# 1. Start-up: a new process's first training step (the numba kernels load from their on-disk cache; the
#    first run of this script after installing also compiles them, so it runs twice)
for attempt in 1 2; do
    python3 benchmarks/first_step.py --model resnet20 --batch-size 128 --threads 2 | tee -a "$summary"
done

# 2. Training steps at 2 threads, then 1 (the issue's targets: ResNet-20 batch 128 >= 1.2x PyTorch at 2
#    threads; ResNet-18 and VGG-16 >= 1.0x)
for threads in 2 1; do
    run "resnet20_b128_t$threads" --model resnet20 --batch-size 128 --steps 20 --threads "$threads"
    run "resnet20_b32_t$threads" --model resnet20 --batch-size 32 --steps 20 --threads "$threads"
    run "resnet20_b16_t$threads" --model resnet20 --batch-size 16 --steps 20 --threads "$threads"
    run "resnet18_b32_t$threads" --model resnet18 --batch-size 32 --steps 12 --threads "$threads"
    run "vgg16_b64_t$threads" --model vgg16 --batch-size 64 --steps 12 --threads "$threads"
    # 3. Inference: eval mode, no gradients
    run "resnet20_eval_b128_t$threads" --model resnet20 --batch-size 128 --steps 20 --eval --threads "$threads"
    run "resnet18_eval_b32_t$threads" --model resnet18 --batch-size 32 --steps 12 --eval --threads "$threads"
done

# 4. Each convolution kernel, minidl's direct kernels against its GEMM path and PyTorch, 1 and 2 threads
for threads in 1 2; do
    for model in resnet20 resnet18; do
        batch=$([ "$model" = resnet20 ] && echo 128 || echo 32)
        echo "## conv kernels $model batch $batch, $threads thread(s)" | tee -a "$summary"
        python3 benchmarks/conv_kernels.py --model "$model" --batch-size "$batch" --threads "$threads" \
            --clock wall | tee -a "$out/conv_kernels.log" | grep -v '^{' | tee -a "$summary"
    done
done
echo "# done $(date -u +%Y-%m-%dT%H:%M:%SZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary"
