# The variants compared on the tiny preset, shared by variants.sh (loss, several seeds) and
# variants-throughput.sh (tokens/s, interleaved on a quiet machine). Sourced; needs ROOT.
# name | flags (learning rates: AdamW 3e-3 from the sweep in docs/EXPERIMENTS.md; Muon 4 x that;
# Keller Jordan's preset lr 0.02 with its own scale, MuonConfig.kellerJordan())
CONFIGS=(
  "adamw|--optimizer adamw"
  "moonlight|--optimizer muon --muon-variant moonlight"
  "keller|--optimizer muon --muon-variant keller --muon-lr 0.02"
  "normuon|--optimizer muon --muon-variant normuon"
  "moonlight+cautious|--optimizer muon --muon-variant moonlight --cautious-weight-decay"
  "moonlight+per-head-qk|--optimizer muon --muon-variant moonlight --per-head-qk"
  # K2's tau of 100, and 15: the tiny model's largest logits reach 20-26, so only the second clips.
  "moonlight+qk-clip|--optimizer muon --muon-variant moonlight --qk-clip 100"
  "moonlight+qk-clip-15|--optimizer muon --muon-variant moonlight --qk-clip 15"
)
