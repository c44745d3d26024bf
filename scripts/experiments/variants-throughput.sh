#!/usr/bin/env bash
# Training throughput of each variant of variants-configs.sh on the tiny preset, measured as
# ratios on one machine: ROUNDS rounds, each running every variant once for STEPS steps in turn
# (interleaved, so drift of the machine's speed hits all variants alike). A variant's tokens/s is
# the median over its rounds of the median step time after the first WARMUP steps. Run it on a
# quiet machine: nothing else may use the cores. Writes $OUT/throughput.md.
#
#   scripts/experiments/variants-throughput.sh [ROUNDS (default 3)] [OUT (default docs/results/variants-tiny)]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS="${1:-3}"
OUT="${2:-$ROOT/docs/results/variants-tiny}"
STEPS="${STEPS:-40}"
WARMUP="${WARMUP:-5}"
. "$ROOT/scripts/experiments/variants-configs.sh"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

for round in $(seq 1 "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    name="${config%%|*}"
    flags="${config#*|}"
    echo "== round $round: $name"
    # shellcheck disable=SC2086
    "$ROOT/muon4j" train --preset tiny --steps "$STEPS" --seed 1 --eval-every "$STEPS" --checkpoint-every 0 --keep 1 \
      --run-dir "$WORK/$name-r$round" $flags >/dev/null
  done
done

python3 - "$WORK" "$ROUNDS" "$WARMUP" "$OUT" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "${CONFIGS[@]}" <<'PY'
import json, os, statistics, sys, datetime
work, rounds, warmup, out, cpu, configs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
rates = {}
for config in configs:
    name = config.split("|")[0]
    per_round = []
    for r in range(1, rounds + 1):
        lines = [json.loads(l) for l in open(os.path.join(work, f"{name}-r{r}", "metrics.jsonl")) if l.strip()]
        steps = [l for l in lines if "loss" in l and "seconds" in l]
        tokens = steps[-1]["tokens"] / steps[-1]["step"]
        per_round.append(tokens / statistics.median(l["seconds"] for l in steps[warmup:]))
    rates[name] = per_round
base = statistics.median(rates["moonlight"])
rows = [f"Measured {datetime.date.today()} on {os.cpu_count()} cores ({cpu}), {rounds} interleaved rounds:",
        "", "| variant | tokens/s (median of rounds) | rounds' range | relative to Moonlight |", "|---|---|---|---|"]
for name, rs in rates.items():
    m = statistics.median(rs)
    rows.append(f"| {name} | {m:,.0f} | {min(rs):,.0f}–{max(rs):,.0f} | {m / base:.3f} |")
open(os.path.join(out, "throughput.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
