#!/usr/bin/env bash
# Muon variants on the tiny preset, several seeds each: AdamW, Moonlight, Keller Jordan, NorMuon,
# Moonlight + cautious weight decay, Moonlight + per-head Q/K orthogonalization (and more as they
# come). Every run is `train --resume-or-start` into its own run directory, so the script can be
# stopped at any moment and run again: finished runs are skipped, a run cut off continues from its
# last checkpoint. Then it writes the table (final validation loss, mean and spread over seeds;
# tokens/s) to $OUT/table.md.
#
#   scripts/experiments/variants.sh [SEEDS (default "1 2 3")] [OUT (default docs/results/variants-tiny)]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SEEDS="${1:-1 2 3}"
OUT="${2:-$ROOT/docs/results/variants-tiny}"
STEPS=120   # the compare job's budget: 120 steps of 16 x 128 tokens = 245,760 tokens
mkdir -p "$OUT"

. "$ROOT/scripts/experiments/variants-configs.sh"   # CONFIGS: name|flags of each variant

for seed in $SEEDS; do
  for config in "${CONFIGS[@]}"; do
    name="${config%%|*}"
    flags="${config#*|}"
    dir="$OUT/$name-s$seed"
    if [ -f "$dir/latest" ] && [ "$(cat "$dir/latest")" = "$(printf 'step-%08d' "$STEPS")" ]; then
      continue
    fi
    echo "== $name, seed $seed"
    # shellcheck disable=SC2086
    "$ROOT/muon4j" train --preset tiny --steps "$STEPS" --seed "$seed" --eval-every 20 --checkpoint-every 20 --keep 1 \
      --resume-or-start --run-dir "$dir" $flags
  done
done

# The table: the last validation loss and the mean tokens/s (steps after the first) of each run.
python3 - "$OUT" "$SEEDS" "${CONFIGS[@]}" <<'PY'
import json, math, os, statistics, sys
out, seeds, configs = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
rows = ["| variant | seeds | final validation loss (mean ± sd) | min–max | tokens/s (mean) |", "|---|---|---|---|---|"]
for config in configs:
    name = config.split("|")[0]
    losses, rates = [], []
    for seed in seeds:
        path = os.path.join(out, f"{name}-s{seed}", "metrics.jsonl")
        if not os.path.exists(path):
            continue
        lines = [json.loads(l) for l in open(path) if l.strip()]
        vals = [l["val_loss"] for l in lines if "val_loss" in l]
        steps = [l for l in lines if "loss" in l]
        if not vals or not steps or steps[-1]["step"] < 120:
            continue
        losses.append(vals[-1])
        tokens = steps[-1]["tokens"] / steps[-1]["step"]
        secs = [l["seconds"] for l in steps[1:]]
        rates.append(tokens / statistics.mean(secs))
    if not losses:
        continue
    sd = statistics.stdev(losses) if len(losses) > 1 else float("nan")
    rows.append(f"| {name} | {len(losses)} | {statistics.mean(losses):.4f} ± {sd:.4f} | {min(losses):.4f}–{max(losses):.4f} | {statistics.mean(rates):,.0f} |")
rows.append("")
rows.append("tokens/s: the mean over each run's steps after the first, as it ran; runs that shared the machine with other work are not comparable.")
open(os.path.join(out, "table.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
