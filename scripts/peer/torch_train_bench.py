#!/usr/bin/env python3
"""PyTorch (CPU) side of scripts/peer-benchmark.sh.

Two measurements, each printed as one machine-readable line starting with "RESULT":

  ns     Newton-Schulz, 5 steps, on a 1024x4096 matrix (median seconds of --repetitions), in float32
         or, with --ns-dtype bfloat16, in bfloat16 as Keller Jordan's Muon and torch.optim.Muon run it
  train  training throughput of the small dense Llama (the same model and step as
         `./muon4j bench training`): tokens/s = batch*context / median step time

Newton-Schulz is Keller Jordan's quintic iteration (github.com/KellerJordan/Muon), in float32
(default) or bfloat16 (--ns-dtype; G cast first, every product in that type, the result cast back):
X = G / (||G||_F + 1e-7), transposed if rows > cols, then 5 times
A = X X^T; B = b A + c A A; X = a X + B X with (a, b, c) = (3.4445, -4.7750, 2.0315).

The model: byte vocabulary 256, 6 layers, width 384, 6 heads of 64 (no grouped queries), SwiGLU
hidden 1024, RMSNorm eps 1e-5, RoPE theta 10000, context 256, untied output head (10,818,432
parameters), batches of 16 x 256 random tokens, cross-entropy loss. One step = forward + backward
+ optimizer step. Optimizers: AdamW on every parameter, or Muon on the 42 hidden matrices (q, k, v,
o, gate, up, down of each layer; Newton-Schulz in --ns-dtype) with AdamW on the embedding, the head
and the norms.

Run with the system interpreter that has torch (Debian's python3-torch), e.g.
  /usr/bin/python3 scripts/peer/torch_train_bench.py ns --repetitions 3
  /usr/bin/python3 scripts/peer/torch_train_bench.py train --optimizer adamw --steps 5 --warmup 2
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Keller Jordan's quintic coefficients (github.com/KellerJordan/Muon).
NS_A, NS_B, NS_C = 3.4445, -4.7750, 2.0315


def newton_schulz5(g, steps=5, eps=1e-7, dtype=torch.float32):
    """Approximate orthogonalisation of a 2-D matrix, in dtype throughout; returned in g's dtype."""
    x = g.to(dtype)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.t()
    x = x / (x.norm() + eps)
    for _ in range(steps):
        a = x @ x.t()
        b = NS_B * a + NS_C * (a @ a)
        x = NS_A * x + b @ x
    if transposed:
        x = x.t()
    return x.to(g.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(context, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(context, dtype=torch.float32), inv)  # (T, hd/2)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    # x: (B, H, T, hd); rotate consecutive pairs (x0, x1), (x2, x3), ...
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.attn_norm = RMSNorm(dim, eps)
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.ffn_norm = RMSNorm(dim, eps)
        self.w1 = nn.Linear(dim, hidden, bias=False)  # gate
        self.w3 = nn.Linear(dim, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, dim, bias=False)  # down

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.wv(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # torch 1.13 has no F.scaled_dot_product_attention (it came in 2.0): softmax(QK^T/sqrt(d) + mask) V
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim)) + mask
        att = torch.softmax(scores, dim=-1) @ v
        x = x + self.wo(att.transpose(1, 2).reshape(b, t, d))
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama(nn.Module):
    def __init__(self, vocab=256, layers=6, dim=384, heads=6, hidden=1024, context=256,
                 eps=1e-5, theta=10000.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, eps) for _ in range(layers))
        self.norm = RMSNorm(dim, eps)
        self.head = nn.Linear(dim, vocab, bias=False)  # untied
        cos, sin = rope_tables(context, dim // heads, theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens):
        t = tokens.size(1)
        x = self.embed(tokens)
        cos, sin, mask = self.cos[:t], self.sin[:t], self.mask[:t, :t]
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self.head(self.norm(x))


class Muon(torch.optim.Optimizer):
    """Muon for 2-D hidden matrices: Nesterov momentum kept as an EMA (beta 0.95), the update
    orthogonalised by NS5 (Keller Jordan, github.com/KellerJordan/Muon) and scaled by
    0.2 * sqrt(max(out, in)) so that its RMS matches AdamW's (Moonlight, arXiv 2502.16982),
    with decoupled weight decay."""

    def __init__(self, params, lr=3e-3, momentum=0.95, weight_decay=0.1, ns_dtype=torch.float32):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "buf" not in state:
                    state["buf"] = torch.zeros_like(p)
                buf = state["buf"]
                buf.lerp_(p.grad, 1 - mu)             # buf = mu*buf + (1-mu)*g
                g = p.grad.lerp(buf, mu)              # Nesterov: (1-mu)*g + mu*buf
                o = newton_schulz5(g, dtype=self.ns_dtype)
                scale = 0.2 * math.sqrt(max(p.size(0), p.size(1)))
                p.mul_(1 - lr * wd)
                p.add_(o, alpha=-lr * scale)


class Hybrid:
    """Muon on the hidden matrices, AdamW on everything else."""

    def __init__(self, model, lr, wd, ns_dtype=torch.float32):
        hidden, other = [], []
        for name, p in model.named_parameters():
            (hidden if p.ndim == 2 and name.startswith("blocks.") else other).append(p)
        self.hidden_count = len(hidden)
        self.muon = Muon(hidden, lr=lr, weight_decay=wd, ns_dtype=ns_dtype)
        self.adamw = torch.optim.AdamW(other, lr=lr, weight_decay=wd)

    def zero_grad(self, set_to_none=True):
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.muon.step()
        self.adamw.step()


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def cmd_ns(args):
    torch.manual_seed(0)
    g = torch.randn(args.rows, args.cols, dtype=torch.float32)
    dtype = DTYPES[args.ns_dtype]
    newton_schulz5(g, dtype=dtype)  # warm-up
    times = []
    for _ in range(args.repetitions):
        t0 = time.perf_counter()
        newton_schulz5(g, dtype=dtype)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"torch NS5 {args.rows}x{args.cols} {args.ns_dtype}: " + ", ".join(f"{t:.4f}" for t in times)
          + f" s; median {med:.4f} s")
    print(f"RESULT ns5_s {med:.6f}")


def cmd_train(args):
    torch.manual_seed(0)
    model = Llama(context=args.context)
    n_params = sum(p.numel() for p in model.parameters())
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        label = "AdamW"
    else:
        opt = Hybrid(model, lr=args.lr, wd=args.weight_decay, ns_dtype=DTYPES[args.ns_dtype])
        label = f"Muon (hybrid, {opt.hidden_count} matrices, Newton-Schulz in {args.ns_dtype})"
    tokens_per_step = args.batch * args.context
    gen = torch.Generator().manual_seed(1)
    times = []
    for i in range(args.warmup + args.steps):
        batch = torch.randint(0, 256, (args.batch, args.context + 1), generator=gen)
        x, y = batch[:, :-1], batch[:, 1:]
        t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    tok_s = tokens_per_step / med
    print(f"torch {label}: {n_params:,} parameters, {tokens_per_step} tokens/step, steps "
          + ", ".join(f"{t:.3f}" for t in times) + f" s; median {med:.3f} s = {tok_s:.0f} tok/s"
          + f" (last loss {loss_value:.3f})")
    print(f"RESULT {args.optimizer}_tok_s {tok_s:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    sub = p.add_subparsers(dest="cmd", required=True)
    ns = sub.add_parser("ns", help="time NS5 on one matrix")
    ns.add_argument("--rows", type=int, default=1024)
    ns.add_argument("--cols", type=int, default=4096)
    ns.add_argument("--repetitions", type=int, default=3)
    ns.add_argument("--ns-dtype", choices=sorted(DTYPES), default="float32")
    tr = sub.add_parser("train", help="training tokens/s of the small dense Llama")
    tr.add_argument("--optimizer", choices=["adamw", "muon"], required=True)
    tr.add_argument("--batch", type=int, default=16)
    tr.add_argument("--context", type=int, default=256)
    tr.add_argument("--steps", type=int, default=5)
    tr.add_argument("--warmup", type=int, default=2)
    tr.add_argument("--lr", type=float, default=3e-3)
    tr.add_argument("--weight-decay", type=float, default=0.1)
    tr.add_argument("--ns-dtype", choices=sorted(DTYPES), default="float32", help="Muon's Newton-Schulz precision")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    {"ns": cmd_ns, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
