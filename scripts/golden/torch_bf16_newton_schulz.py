#!/usr/bin/env python3
"""Golden outputs for VariantReferenceTest's emulation of torch.optim.Muon's bfloat16 Newton–Schulz.

Runs the Newton–Schulz of torch.optim.Muon (PyTorch 2.9, torch/optim/_muon.py,
_zeropower_via_newtonschulz, written out below op for op) on the CPU in bfloat16 with whatever
torch is installed (PyTorch 1.13 has bfloat16 matmul on the CPU), and writes the outputs as
bfloat16 bit patterns to core/src/test/resources/dev/muon4j/optim/torch-bf16-newton-schulz.txt.

Every matrix product here has m·k·n > 4096: PyTorch 1.13 sends such bfloat16 products to oneDNN,
which accumulates in float32 and rounds once to bfloat16 (as PyTorch 2.x does on the CPU and cuBLAS
does on a GPU); smaller ones go to a fallback that rounds to bfloat16 after every addition, which
no current PyTorch does. The script checks its own float64 emulation against torch and says how
many elements differ.

Inputs come from a 64-bit linear congruential generator (Knuth's MMIX constants) that the Java test
reproduces exactly: value = ((state >> 33) mod 2001 − 1000) / 1024, a float32 that is not a
bfloat16 in general, so the first cast is exercised.

Usage (from the repository root): /usr/bin/python3 scripts/golden/torch_bf16_newton_schulz.py
"""
import os

import numpy as np
import torch

OUT = os.path.join("core", "src", "test", "resources", "dev", "muon4j", "optim", "torch-bf16-newton-schulz.txt")

A, B, C = 3.4445, -4.7750, 2.0315  # torch/optim/_muon.py DEFAULT_A/B/C
EPS = 1e-7  # torch/optim/_muon.py EPS
MASK = (1 << 64) - 1


def lcg_matrix(seed, rows, cols):
    state = seed & MASK
    out = np.empty(rows * cols, dtype=np.float32)
    for i in range(rows * cols):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        out[i] = np.float32(((state >> 33) % 2001 - 1000) / 1024.0)
    return out.reshape(rows, cols)


def torch_ns(grad, steps):
    """torch.optim.Muon's _zeropower_via_newtonschulz (2.9), op for op."""
    ortho = grad.bfloat16()
    if grad.size(0) > grad.size(1):
        ortho = ortho.T
    ortho.div_(ortho.norm().clamp(min=EPS))
    for _ in range(steps):
        gram = ortho @ ortho.T
        gram_update = torch.addmm(gram, gram, gram, beta=B, alpha=C)
        ortho = torch.addmm(ortho, gram_update, ortho, beta=A)
    if grad.size(0) > grad.size(1):
        ortho = ortho.T
    return ortho


def bf16(x):
    """Round float32 values to bfloat16 (nearest, ties to even), returned as float32."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).bfloat16().float().numpy()


def emulate(grad, steps):
    """Float64 sums rounded to float32, float32 epilogue, one rounding to bfloat16 per element."""
    f = np.float32
    x = bf16(grad)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T.copy()
    norm = bf16(np.float32(np.sqrt(np.sum(x.astype(np.float64) ** 2))))
    norm = max(norm, bf16(np.float32(EPS)))
    x = bf16(x / norm)
    for _ in range(steps):
        gram = bf16((x.astype(np.float64) @ x.T.astype(np.float64)).astype(np.float32))
        prod = (gram.astype(np.float64) @ gram.astype(np.float64)).astype(np.float32)
        upd = bf16(f(B) * gram + f(C) * prod)
        prod = (upd.astype(np.float64) @ x.astype(np.float64)).astype(np.float32)
        x = bf16(f(A) * x + prod)
    return x.T if tall else x


def bits(x):
    return [(int(v) >> 16) & 0xFFFF for v in np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).ravel()]


def main():
    lines = [
        "# torch.optim.Muon's Newton-Schulz (PyTorch 2.9 _zeropower_via_newtonschulz, 5 steps) in bfloat16",
        "# on the CPU, made by scripts/golden/torch_bf16_newton_schulz.py with torch " + torch.__version__ + ".",
        "# Each case: a line 'case SEED ROWS COLS', then the ROWS*COLS outputs, row-major, as bfloat16 bits.",
    ]
    for seed, rows, cols in [(1, 17, 20), (2, 20, 17), (3, 24, 40)]:
        g = lcg_matrix(seed, rows, cols)
        out = torch_ns(torch.from_numpy(g), 5).float().numpy()
        emu = emulate(g, 5)
        print(f"seed {seed} {rows}x{cols}: {int((out != emu).sum())} of {out.size} differ from the emulation,"
              f" max |diff| {np.abs(out - emu).max():.3g}")
        lines.append("case %d %d %d" % (seed, rows, cols))
        words = bits(out)
        for i in range(0, len(words), 16):
            lines.append(" ".join("%04x" % w for w in words[i:i + 16]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
