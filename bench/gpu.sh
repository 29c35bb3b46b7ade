#!/usr/bin/env bash
# bench/gpu.sh — issue 16's figures on a machine with a real GPU, one command, at most 8 minutes:
# Dawn (npm `webgpu`) on the GPU's own Vulkan driver runs `npm run bench` (fp32 matmul variants beside
# numpy, int4 vs fp32 GEMV, attention flash vs materialized) and prints the int4 GEMV's fraction of
# the GPU's memory bandwidth and the attention TFLOP/s.
#   bench/gpu.sh            on a GPU machine (needs node_modules: npm ci)
#   bench/gpu.sh --quick    small shapes; with --software it runs on lavapipe (how it is tried here)
# Peak bandwidth: QUENCH_PEAK_GBPS, else looked up from nvidia-smi's name (H100/H200/A100/L4/4090).
# Not done yet (issue 16): the SmolLM2-135M-shaped KD-QAT step beside PyTorch eager CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""; software=0
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --software) software=1 ;;
    *) echo "bench/gpu.sh: unknown argument $a (use --quick, --software)" >&2; exit 2 ;;
  esac
done
if [ "$software" = 1 ]; then
  export QUENCH_VULKAN=lavapipe
else
  icd=""
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/radeon_icd.x86_64.json /usr/share/vulkan/icd.d/intel_icd.x86_64.json; do
    if [ -f "$f" ]; then icd="$f"; break; fi
  done
  if [ -z "$icd" ]; then
    echo "bench/gpu.sh: no GPU Vulkan driver found (looked for NVIDIA, RADV, Intel ICDs); use --software to try it on lavapipe" >&2
    exit 1
  fi
  export VK_ICD_FILENAMES="$icd"
  unset QUENCH_VULKAN || true
fi
if [ -z "${QUENCH_PEAK_GBPS:-}" ] && command -v nvidia-smi >/dev/null 2>&1; then
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  case "$name" in
    *H200*) QUENCH_PEAK_GBPS=4800 ;;
    *H100*PCIe*) QUENCH_PEAK_GBPS=2000 ;;
    *H100*) QUENCH_PEAK_GBPS=3350 ;;
    *A100*80GB*) QUENCH_PEAK_GBPS=2039 ;;
    *A100*) QUENCH_PEAK_GBPS=1555 ;;
    *L4*) QUENCH_PEAK_GBPS=300 ;;
    *4090*) QUENCH_PEAK_GBPS=1008 ;;
  esac
  echo "gpu: $name (peak ${QUENCH_PEAK_GBPS:-unknown} GB/s)"
fi
export QUENCH_PEAK_GBPS="${QUENCH_PEAK_GBPS:-}"
# 8 minutes in all: three sections of at most 120 s each, plus compile and start-up
timeout 480 npx tsx bench/bench.ts $quick --section-s 120
echo "KD-QAT step (SmolLM2-135M shape) vs PyTorch eager CUDA: not implemented yet (issue 16)"
