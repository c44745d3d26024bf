#!/usr/bin/env bash
# Peer benchmark: PyTorch on the CPU against muon4j, on the same machine, measured in turns.
#
#   NS5       Newton-Schulz (5 quintic steps) on 1024x4096 in float32 and in bfloat16: PyTorch's
#             seconds against the 1024x4096 rows of `./muon4j bench optimizer --skip-gpt2`
#   training  tokens/s of the small dense Llama (10.8M parameters, batch 16 x 256) with AdamW, with
#             Muon (hybrid) and with Muon whose Newton-Schulz runs in bfloat16 (both sides):
#             scripts/peer/torch_train_bench.py against `./muon4j bench training --optimizer adamw`,
#             `--optimizer muon` and `--optimizer muon --ns-precision bf16`, one process each
#
# Each round runs both sides once; odd rounds start with PyTorch, even rounds with muon4j, so a
# drift in the machine's speed falls on both. Per-round and median ratios (muon4j / PyTorch: speed-up
# for NS5, tokens/s ratio for training) are printed at the end with the project's targets.
#
# PyTorch comes from Debian's python3-torch under /usr/bin/python3 (installed with apt-get when
# missing). Usage: scripts/peer-benchmark.sh [--rounds N] [--quick] [--log-dir DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
TORCH_BENCH="$ROOT/scripts/peer/torch_train_bench.py"

ROUNDS=2
STEPS=5          # timed training steps per optimizer, median reported (both sides)
WARMUP=2         # untimed training steps first (both sides)
NS_REPS=3        # timed NS5 repetitions, median reported (both sides)
LOG_DIR=""

usage() {
  cat <<USAGE
Usage: scripts/peer-benchmark.sh [options]
  --rounds N     rounds of (PyTorch, muon4j) measurements, alternating who goes first (default: $ROUNDS)
  --quick        smoke run: 1 round, 2 timed steps after 1 warm-up, 1 NS5 repetition
  --log-dir DIR  keep every command's full output in DIR (default: a new temporary directory)
  -h, --help     this text
Targets reported against: muon4j >= 2.5x PyTorch's training tokens/s with AdamW, >= 4x with Muon,
NS5 on 1024x4096 >= 3x faster. The bfloat16 rows (both sides in bfloat16) are held to the same targets. Takes about 5 minutes a round on 2 cores.
USAGE
}

die() { echo "peer-benchmark: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; ROUNDS="$2"; shift 2 ;;
    --rounds=*) ROUNDS="${1#*=}"; shift ;;
    --quick) ROUNDS=1; STEPS=2; WARMUP=1; NS_REPS=1; shift ;;
    --log-dir) [ $# -ge 2 ] || die "--log-dir needs a directory"; LOG_DIR="$2"; shift 2 ;;
    --log-dir=*) LOG_DIR="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
if [ -z "$LOG_DIR" ]; then LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/peer-benchmark.XXXXXX")"; fi
mkdir -p "$LOG_DIR" || die "cannot create log directory $LOG_DIR"

# --- PyTorch ---------------------------------------------------------------------------------
[ -x "$PY" ] || die "$PY not found (Debian's python3 is needed for python3-torch)"
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "PyTorch not importable by $PY: installing Debian's python3-torch" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y python3-torch || die "apt-get install -y python3-torch failed"
  "$PY" -c "import torch" || die "python3-torch installed but '$PY -c \"import torch\"' still fails"
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"

# --- muon4j: build before anything is timed ---------------------------------------------------
echo "+ ./muon4j --version   (builds on first use)"
(cd "$ROOT" && ./muon4j --version) >"$LOG_DIR/muon4j-version.txt" 2>&1 \
  || { cat "$LOG_DIR/muon4j-version.txt" >&2; die "./muon4j --version failed"; }

CPU_MODEL="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "machine: ${CPU_MODEL:-unknown CPU}, $(nproc) cores; torch $TORCH_VERSION; $(grep -v WARNING "$LOG_DIR/muon4j-version.txt" | tail -1)"
echo "rounds $ROUNDS, training: $WARMUP warm-up + $STEPS timed steps, NS5: $NS_REPS repetitions; logs in $LOG_DIR"

# run NAME CMD... : print the command, keep its output in $LOG_DIR/NAME.txt, fail clearly
run() {
  local name="$1"; shift
  echo "+ $*" >&2
  if ! "$@" >"$LOG_DIR/$name.txt" 2>&1; then
    tail -20 "$LOG_DIR/$name.txt" >&2
    die "command failed: $* (full output: $LOG_DIR/$name.txt)"
  fi
}
is_number() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }

torch_ns() {   # round dtype -> seconds
  run "r$1-torch-ns-$2" "$PY" "$TORCH_BENCH" ns --rows 1024 --cols 4096 --repetitions "$NS_REPS" --ns-dtype "$2"
  local v; v="$(awk '$1=="RESULT" && $2=="ns5_s" {print $3}' "$LOG_DIR/r$1-torch-ns-$2.txt")"
  is_number "$v" || die "no NS5 time in $LOG_DIR/r$1-torch-ns-$2.txt"
  echo "$v"
}
torch_train() {   # round optimizer [ns-dtype] -> tok/s
  local dtype="${3:-float32}"
  run "r$1-torch-$2-$dtype" "$PY" "$TORCH_BENCH" train --optimizer "$2" --steps "$STEPS" --warmup "$WARMUP" --ns-dtype "$dtype"
  local v; v="$(awk -v k="$2_tok_s" '$1=="RESULT" && $2==k {print $3}' "$LOG_DIR/r$1-torch-$2-$dtype.txt")"
  is_number "$v" || die "no tokens/s in $LOG_DIR/r$1-torch-$2-$dtype.txt"
  echo "$v"
}
muon4j_ns() {   # -> "float32_seconds bfloat16_seconds": the 1024x4096 rows of the NS5 and the bfloat16 tables
  run "r$1-muon4j-optimizer" "$ROOT/muon4j" bench optimizer --skip-gpt2 --repetitions "$NS_REPS"
  local f="$LOG_DIR/r$1-muon4j-optimizer.txt" v b
  v="$(awk '$1=="1024x4096" && $3=="|" {print $4; exit}' "$f")"
  b="$(awk '$1=="1024x4096" && $2=="|" && $4=="|" {print $5; exit}' "$f")"
  is_number "$v" && is_number "$b" \
    || die "cannot parse the 1024x4096 NS5 times (float32 and bfloat16) from '$ROOT/muon4j bench optimizer' (output: $f)"
  echo "$v $b"
}
muon4j_train() {   # -> "adamw_tok_s muon_tok_s", each optimizer in a process of its own, as PyTorch's side runs them
  run "r$1-muon4j-training-adamw" "$ROOT/muon4j" bench training --optimizer adamw --steps "$STEPS" --warmup "$WARMUP"
  run "r$1-muon4j-training-muon" "$ROOT/muon4j" bench training --optimizer muon --steps "$STEPS" --warmup "$WARMUP"
  local fa="$LOG_DIR/r$1-muon4j-training-adamw.txt" fm="$LOG_DIR/r$1-muon4j-training-muon.txt" a m
  a="$(sed -nE 's/^dense +AdamW +([0-9.]+) tok\/s.*/\1/p' "$fa" | head -1)"
  m="$(sed -nE 's/^dense +Muon \(hybrid\) +([0-9.]+) tok\/s.*/\1/p' "$fm" | head -1)"
  is_number "$a" || die "cannot parse 'dense AdamW ... tok/s' from '$ROOT/muon4j bench training --optimizer adamw' (output: $fa)"
  is_number "$m" || die "cannot parse 'dense Muon (hybrid) ... tok/s' from '$ROOT/muon4j bench training --optimizer muon' (output: $fm)"
  echo "$a $m"
}
muon4j_train_bf16() {   # -> Muon tok/s with Newton-Schulz in bfloat16
  run "r$1-muon4j-training-bf16" "$ROOT/muon4j" bench training --optimizer muon --ns-precision bf16 --steps "$STEPS" --warmup "$WARMUP"
  local f="$LOG_DIR/r$1-muon4j-training-bf16.txt" m
  m="$(sed -nE 's/^dense +Muon \(hybrid\) +([0-9.]+) tok\/s.*/\1/p' "$f" | head -1)"
  is_number "$m" || die "cannot parse 'dense Muon (hybrid) ... tok/s' from '$ROOT/muon4j bench training --ns-precision bf16' (output: $f)"
  echo "$m"
}

declare -a T_NS M_NS T_NB M_NB T_AD M_AD T_MU M_MU T_MB M_MB
torch_side() {
  T_NS[$1]="$(torch_ns "$1" float32)"; T_NB[$1]="$(torch_ns "$1" bfloat16)"
  T_AD[$1]="$(torch_train "$1" adamw)"; T_MU[$1]="$(torch_train "$1" muon)"; T_MB[$1]="$(torch_train "$1" muon bfloat16)"
}
muon4j_side() {
  local pair
  pair="$(muon4j_ns "$1")"; read -r M_NS[$1] M_NB[$1] <<<"$pair"
  pair="$(muon4j_train "$1")"; read -r M_AD[$1] M_MU[$1] <<<"$pair"
  M_MB[$1]="$(muon4j_train_bf16 "$1")"
}
for ((r = 1; r <= ROUNDS; r++)); do
  echo "--- round $r of $ROUNDS ($([ $((r % 2)) -eq 1 ] && echo "PyTorch first" || echo "muon4j first"))"
  if [ $((r % 2)) -eq 1 ]; then
    torch_side "$r"; muon4j_side "$r"
  else
    muon4j_side "$r"; torch_side "$r"
  fi
  printf 'round %d: NS5 1024x4096 torch %.4f / %.4f s (f32 / bf16), muon4j %.4f / %.4f s | AdamW torch %.0f, muon4j %.0f tok/s | Muon torch %.0f / %.0f, muon4j %.0f / %.0f tok/s (f32 / bf16 NS)\n' \
    "$r" "${T_NS[r]}" "${T_NB[r]}" "${M_NS[r]}" "${M_NB[r]}" "${T_AD[r]}" "${M_AD[r]}" "${T_MU[r]}" "${T_MB[r]}" "${M_MU[r]}" "${M_MB[r]}"
done

# --- summary ----------------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }
verdict() { awk -v x="$1" -v t="$2" 'BEGIN {print (x >= t ? "met" : "NOT met")}'; }

declare -a R_NS R_NB R_AD R_MU R_MB
for ((r = 1; r <= ROUNDS; r++)); do
  R_NS[r]="$(div "${T_NS[r]}" "${M_NS[r]}")"   # speed-up: PyTorch seconds / muon4j seconds
  R_NB[r]="$(div "${T_NB[r]}" "${M_NB[r]}")"
  R_AD[r]="$(div "${M_AD[r]}" "${T_AD[r]}")"
  R_MU[r]="$(div "${M_MU[r]}" "${T_MU[r]}")"
  R_MB[r]="$(div "${M_MB[r]}" "${T_MB[r]}")"
done
echo
echo "=== Peer benchmark: PyTorch $TORCH_VERSION (CPU) against muon4j, ${CPU_MODEL:-unknown CPU}, $(nproc) cores, $ROUNDS round(s)"
printf '%-26s %14s %14s %-22s %8s %6s  %s\n' "measurement" "PyTorch (med)" "muon4j (med)" "muon4j/PyTorch rounds" "median" "target" "verdict"
line() {  # label unit torch[] muon4j[] ratio[] target
  local label="$1" unit="$2" target="$6"; local -n t="$3" m="$4" q="$5"
  local mt mm mq
  mt="$(median "${t[@]}")"; mm="$(median "${m[@]}")"; mq="$(median "${q[@]}")"
  printf '%-26s %10.4g %-3s %10.4g %-3s %-22s %7.2fx %5.1fx  %s\n' "$label" "$mt" "$unit" "$mm" "$unit" \
    "$(printf '%s ' "${q[@]}")" "$mq" "$target" "$(verdict "$mq" "$target")"
}
line "NS5 1024x4096 (speed-up)" "s" T_NS M_NS R_NS 3
line "NS5 1024x4096, bf16" "s" T_NB M_NB R_NB 3
line "training, AdamW (tok/s)" "" T_AD M_AD R_AD 2.5
line "training, Muon (tok/s)" "" T_MU M_MU R_MU 4
line "training, Muon, bf16 NS" "" T_MB M_MB R_MB 4
echo "(ratios: NS5 = PyTorch seconds / muon4j seconds; training = muon4j tok/s / PyTorch tok/s; full outputs in $LOG_DIR)"
