#!/usr/bin/env bash
# bench/gpu-pack.sh — packs into .gpu/ (git-ignored, ~32 MB) what bench/gpu.sh --packed needs on a
# bare GPU machine that has no node, no node_modules and no Vulkan loader, only the GPU's driver
# (this workplace's device machines: 64 MiB may travel with the tree, node_modules is 1.8 GB):
#   .gpu/node.xz          this machine's node binary (it links only glibc and libstdc++)
#   .gpu/webgpu.tar.xz    the `webgpu` package (Dawn) for linux-x64 alone
#   .gpu/js/*.mjs         esbuild bundles: quench.mjs (the CLI: bench, kernels), smollm-kdqat.mjs,
#                         step-profile.mjs; they find shaders/ through $QUENCH_REPO_ROOT
#   .gpu/deb/*.deb        the Vulkan loader (libvulkan1), unpacked there with dpkg -x
# Then, on the GPU machine, from the repository root: bash bench/gpu.sh --packed (README, issue 16).
# Run here after `npm ci`; x86-64 only (the device's processor).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -m)" != x86_64 ]; then echo "bench/gpu-pack.sh: packs x86-64 binaries; this machine is $(uname -m)" >&2; exit 1; fi
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || { echo "bench/gpu-pack.sh: node_modules/webgpu is missing: run npm ci first" >&2; exit 1; }
rm -rf .gpu
mkdir -p .gpu/js .gpu/deb
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" >.gpu/node.xz
tar -C node_modules -cJf .gpu/webgpu.tar.xz webgpu/package.json webgpu/index.js webgpu/dist/linux-x64/dawn.node
# the native and optional packages stay outside the bundles: their sections report them missing
ext=(--external:webgpu --external:onnxruntime-node --external:onnxruntime-web --external:node-llama-cpp --external:playwright)
# CommonJS dependencies inside an ESM bundle call require(): give them Node's
banner="import { createRequire as __quenchRequire } from 'node:module'; const require = __quenchRequire(import.meta.url);"
for e in src/cli/main.ts:quench bench/smollm-kdqat.mts:smollm-kdqat bench/step-profile.mts:step-profile; do
  npx esbuild "${e%%:*}" --bundle --platform=node --format=esm --target=node20 --log-level=warning \
    "${ext[@]}" --banner:js="$banner" --outfile=".gpu/js/${e##*:}.mjs"
done
log=$(mktemp)
if ! (cd .gpu/deb && apt-get download libvulkan1) >"$log" 2>&1 || ! ls .gpu/deb/libvulkan1_*.deb >/dev/null 2>&1; then
  cat "$log" >&2
  echo "bench/gpu-pack.sh: apt-get download libvulkan1 failed (apt-get update first?)" >&2
  exit 1
fi
rm -f "$log"
# what the bundles were built from: bench/gpu.sh --packed refuses them once src/ or bench/ differ
bench/gpu.sh --source-hash >.gpu/source.sha256
du -sh .gpu | sed 's/^/bench\/gpu-pack.sh: /'
