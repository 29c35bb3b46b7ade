#!/usr/bin/env bash
# bench/gpu.sh — issue 16's figures on a machine with a real GPU, one command, at most 8 minutes:
# Dawn (npm `webgpu`) on the GPU's own Vulkan driver runs `npm run bench` (fp32 matmul variants beside
# numpy, int4 vs fp32 GEMV, attention flash vs materialized, greedy generation with a
# SmolLM2-135M-shaped model in fp32 and w4g32) and prints the int4 GEMV's fraction of
# the GPU's memory bandwidth and the attention TFLOP/s; `quench kernels` times every matmul variant
# and prints the fastest of each family; then bench/smollm-kdqat.mts runs a
# SmolLM2-135M-shaped KD-QAT step (w4g32, ov, B=4, T=256) in Quench beside the same recipe's step in
# PyTorch eager (CUDA when torch sees the GPU) and prints the step-time ratio (target <= 3x).
#   bench/gpu.sh            on a GPU machine (needs node_modules: npm ci)
#   bench/gpu.sh --quick    small shapes; with --software it runs on lavapipe (how it is tried here)
#   bench/gpu.sh --software --gpu-picks [--quick]
#                           on lavapipe with the kernels a GPU's 'auto' picks (QUENCH_PICKS=gpu:
#                           workgroup-memory matmul tiles, flash_tiled / flash_split, dx_wg, gemv) in place of the
#                           8-lane subgroup kernels: the GPU's code path, dry-run here
#   bench/gpu.sh --packed   on a bare machine without node or node_modules: node, Dawn, bundles of
#                           the scripts and the Vulkan loader from .gpu/ (bench/gpu-pack.sh makes it
#                           here; README, "On a GPU machine of this workplace")
# Peak bandwidth: QUENCH_PEAK_GBPS, else looked up from nvidia-smi's name (H100/H200/A100/L4/4090).
# PyTorch: QUENCH_PYTHON, else /usr/bin/python3; without torch the Quench figure prints alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# the bundles' source: the TypeScript and JavaScript under src/ and bench/ (bench/gpu-pack.sh writes
# it into .gpu)
source_hash() { find src bench -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.mjs' -o -name '*.js' \) -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1; }
if [ "${1:-}" = --source-hash ]; then source_hash; exit 0; fi
quick=""; software=0; packed=0; gpupicks=0
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --software) software=1 ;;
    --packed) packed=1 ;;
    --gpu-picks) gpupicks=1 ;;
    *) echo "bench/gpu.sh: unknown argument $a (use --quick, --software, --packed, --gpu-picks)" >&2; exit 2 ;;
  esac
done
if [ "$packed" = 1 ]; then
  for f in .gpu/node.xz .gpu/webgpu.tar.xz .gpu/js/quench.mjs .gpu/js/smollm-kdqat.mjs .gpu/js/step-profile.mjs; do
    [ -f "$f" ] || { echo "bench/gpu.sh --packed: $f is missing: run bench/gpu-pack.sh where node_modules is, and carry .gpu" >&2; exit 1; }
  done
  # xz, else Python's lzma (a bare image may lack xz-utils)
  unxz_to_stdout() { if command -v xz >/dev/null 2>&1; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
  if [ "$(cat .gpu/source.sha256 2>/dev/null)" != "$(source_hash)" ]; then
    echo "bench/gpu.sh --packed: .gpu was packed from another version of src/ or bench/: run bench/gpu-pack.sh again" >&2
    exit 1
  fi
  qn=/tmp/quench-node
  mkdir -p "$qn"
  unxz_to_stdout .gpu/node.xz >"$qn/node"
  chmod +x "$qn/node"
  export PATH="$qn:$PATH" # child processes' `node` too
  mkdir -p .gpu/node_modules
  unxz_to_stdout .gpu/webgpu.tar.xz | tar -C .gpu/node_modules -x # found from .gpu/js/ by Node's resolution
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    for f in .gpu/deb/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  export QUENCH_REPO_ROOT="$PWD" # the bundles find shaders/ here
  QUENCH=("$qn/node" .gpu/js/quench.mjs); SMOLLM=("$qn/node" .gpu/js/smollm-kdqat.mjs); PROFILE=("$qn/node" .gpu/js/step-profile.mjs)
  echo "packed: $("$qn/node" --version) from .gpu, Vulkan loader: $(ldconfig -p | grep -m1 'libvulkan\.so\.1' | sed 's/.*=> //')"
else
  QUENCH=(npx tsx src/cli/main.ts); SMOLLM=(npx tsx bench/smollm-kdqat.mts); PROFILE=(npx tsx bench/step-profile.mts)
fi
if [ "$gpupicks" = 1 ]; then export QUENCH_PICKS=gpu; fi
if [ "$software" = 1 ]; then
  export QUENCH_VULKAN=lavapipe
else
  # a driver named by the environment first (VK_DRIVER_FILES / VK_ICD_FILENAMES), then the usual
  # places; /usr/local/nvidia/...: where this workplace's GPU machines mount NVIDIA's driver
  icd=""
  for f in "${VK_DRIVER_FILES:-}" "${VK_ICD_FILENAMES:-}" /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/radeon_icd.x86_64.json /usr/share/vulkan/icd.d/intel_icd.x86_64.json; do
    if [ -n "$f" ] && [ -f "$f" ]; then icd="$f"; break; fi
  done
  if [ -z "$icd" ]; then
    echo "bench/gpu.sh: no GPU Vulkan driver found (looked for NVIDIA, RADV, Intel ICDs); use --software to try it on lavapipe" >&2
    exit 1
  fi
  export VK_ICD_FILENAMES="$icd"
  echo "vulkan driver: $icd"
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
# Preflight (seconds): the adapter Dawn finds. A missing or CPU adapter would make every step below
# fail or measure the wrong thing for 8 minutes; stop here instead and say why.
if ! adapter=$(timeout 60 "${QUENCH[@]}" info 2>&1); then
  echo "$adapter" | tail -5 >&2
  echo "bench/gpu.sh: Dawn found no usable WebGPU adapter (driver ${VK_ICD_FILENAMES:-none}); nothing measured" >&2
  exit 1
fi
echo "$adapter" | grep -E '^(backend|vendor|description|picks|kernels|attention):'
if [ "$software" = 0 ] && echo "$adapter" | grep -qiE 'llvmpipe|swiftshader|architecture: software'; then
  echo "bench/gpu.sh: Dawn picked a CPU adapter, not the GPU (driver ${VK_ICD_FILENAMES:-none}); nothing measured. Use --software to run on it on purpose" >&2
  exit 1
fi
log=$(mktemp)
# 8 minutes in all: the bench's sections at most 60 s each (at most 220 s with compile and
# start-up), quench kernels (45 s), the SmolLM2-shaped step (recipe ~1 min to write, both sides'
# steps; 165 s), then one profiled step of it: per-kernel GPU time (45 s)
timeout 220 "${QUENCH[@]}" bench $quick --section-s 60 2>&1 | tee -a "$log" || echo "bench/gpu.sh: npm run bench ended with $? (timeout 220 s)"
# every matmul variant on this GPU, the fastest of each family (what the studio's GPU panel offers)
if [ -n "$quick" ]; then ksize=small; else ksize=large; fi
timeout 45 "${QUENCH[@]}" kernels --size $ksize 2>&1 | tee -a "$log" || echo "bench/gpu.sh: quench kernels ended with $? (timeout 45 s)"
# Quench's step with the adapter's kernel picks and with tile8 (the 8x8 register-tile matmuls:
# fp32 shared8, int4 gemm_wg8 / dx_wg8, f16-weight teacher half_wg8; tile8p: the same with the next
# slab prefetched into registers, shared8p / gemm_wg8p / dx_wg8p; tile8h: tile8 with the teacher in
# f16 arithmetic, half_wg8h; none picked by auto until a GPU has measured them); tuned:
# the adapter's picks, then tuned per shape after the first warm-up step (QUENCH_KERNELS=…,tune)
if [ -n "$quick" ]; then step_args="--layers 1 --batch 1 --seq 32 --steps 2 --warmup 1 --matmul auto,tile8,tile8p"; else step_args="--steps 8 --warmup 2 --matmul auto,tile8,tile8p,tile8h,tuned"; fi
timeout 165 "${SMOLLM[@]}" $step_args 2>&1 | tee -a "$log" || echo "bench/gpu.sh: the SmolLM2-shaped KD-QAT step ended with $? (timeout 165 s)"
# where that step's GPU time goes, per kernel (timestamp queries, each dispatch in its own pass),
# with the adapter's picks: what to speed up next
if [ -n "$quick" ]; then prof_args="--layers 1 --steps 1"; else prof_args="--batch 4 --seq 256 --steps 1"; fi
timeout 45 "${PROFILE[@]}" --smollm2 $prof_args 2>&1 | tee -a "$log" || echo "bench/gpu.sh: the profiled SmolLM2-shaped step ended with $? (timeout 45 s)"
# the figures issue 16 asks for, again at the end (a long profile would push them out of a short tail)
echo
echo "== bench/gpu.sh summary =="
grep -E '^(adapter|gpu):|^target |quench/|GEMV M=1 K=4096|^fp32 gemv .*M=1 K=4096|best fp32 gemv time|^generate |fraction of|attention forward best|^decode Tq=|TFLOP/s \(|step time|fastest here|adapter defaults|^attention: |host syncs per' "$log" | grep -v '^Warning' || echo "(no figures: see the output above)"
rm -f "$log"
