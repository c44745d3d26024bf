#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU, from the repository root, after scripts/gpu/pack.sh has filled
# .gpu/ elsewhere: muon4j-cuda's tests on the GPU, then `bench optimizer --backend cuda` and
# scripts/gpu/torch_bench.py (PyTorch on the same GPU), one after the other. Logs and JSON lines go
# to $OUT (default /tmp/gpu-out). Needs no JDK, Maven or network there: PyTorch's CUDA wheels provide
# the CUDA libraries.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/muon4j-gpu
tar xzf .gpu/jdk.tgz -C /tmp/muon4j-gpu
tar xzf .gpu/cuda-test-classes.tgz -C /tmp/muon4j-gpu
JAVA="/tmp/muon4j-gpu/jdk/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx16g"
CP=$(ls .gpu/lib/*.jar | tr '\n' ':')
PY=$(command -v python3)
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  lscpu | grep -m1 "Model name"
} 2>&1 | tee "$OUT/env.txt"

tests() {
  timeout 240 $JAVA -jar .gpu/junit/junit-platform-console-standalone-*.jar execute --class-path "$CP/tmp/muon4j-gpu/test-classes" \
    --select-package dev.muon4j.cuda --details=tree --disable-banner 2>&1 | tee "$OUT/gpu-tests.log"
}
# First with muon4j's own search for the CUDA libraries; if no GPU opened that way, name PyTorch's wheels'
# folders, to both muon4j and the dynamic linker.
tests
if ! grep -q "CUDA tests on" "$OUT/gpu-tests.log"; then
  cp "$OUT/gpu-tests.log" "$OUT/gpu-tests-own-search.log"
  export MUON4J_CUDA_PATH=$("$PY" - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for lib in glob.glob(os.path.join(sp, "nvidia", "**", "lib"), recursive=True):
        if glob.glob(os.path.join(lib, "lib*.so*")):
            dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
  export LD_LIBRARY_PATH=$MUON4J_CUDA_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "no GPU opened with muon4j's own search; again with MUON4J_CUDA_PATH=$MUON4J_CUDA_PATH" | tee -a "$OUT/env.txt"
  tests
fi

timeout 200 $JAVA -cp "$CP" dev.muon4j.cli.Main bench optimizer --backend cuda --repetitions 20 \
  --json-out "$OUT/muon4j-bench.jsonl" 2>&1 | tee "$OUT/muon4j-bench.log"
PYTHONUNBUFFERED=1 timeout 200 "$PY" scripts/gpu/torch_bench.py --json-out "$OUT/torch-bench.jsonl" 2>&1 | tee "$OUT/torch-bench.log"
