#!/usr/bin/env python3
"""PyTorch's side of the muon4j CUDA-backend comparison: one JSON line per measurement.

Measures, on one GPU (cuda events, after warm-up; median and min in milliseconds):
  ns5_bf16_4096            5 Newton-Schulz steps on a 4096x4096 bf16 matrix, eager, written as
                           torch.optim.Muon's `_zeropower_via_newtonschulz` (PyTorch >= 2.9) does it
  ns5_bf16_4096_torch_fn   torch.optim._muon._zeropower_via_newtonschulz itself, when importable
  ns5_bf16_4096_compiled   the first one under torch.compile
  torch_optim_muon_step    torch.optim.Muon.step() on GPT-2 small's 48 hidden matrices (fp32)
  batched_muon_step_*      a same-shape-batched Muon (stacked weights/grads/momentum, bmm-based
                           Newton-Schulz in bf16), eager and under torch.compile
  fused_adamw_step         torch.optim.AdamW(fused=True) on the same 48 matrices
  bf16_gemm_8192           one 8192^3 bf16 matmul, as a check of the card's rate (TFLOP/s)

Newton-Schulz coefficients (3.4445, -4.7750, 2.0315) are Keller Jordan's, from his Muon
(https://kellerjordan.github.io/posts/muon/, github.com/KellerJordan/Muon), the same defaults
torch.optim.Muon uses.

Every measurement is guarded: a failure prints {"name": ..., "error": ...} and the run goes on.
Usage: python3 scripts/gpu/torch_bench.py [--device cuda] [--quick] [--no-compile] [--json-out PATH]
--quick uses tiny shapes and 2 repetitions, so the script can be smoke-tested on a CPU.
"""
import argparse
import inspect
import json
import math
import statistics
import time

import torch

A, B, C = 3.4445, -4.7750, 2.0315  # Keller Jordan's quintic Newton-Schulz coefficients
EPS = 1e-7                         # torch.optim.Muon's default eps
GPT2_SMALL = dict(layers=12, d=768)

ARGS = None
DEVICE_NAME = "cpu"
JSON_OUT = None  # open file for --json-out, written line by line so a cut-off run keeps its lines


def emit(name, **fields):
    """Print one JSON line (and append it to --json-out)."""
    line = json.dumps({"name": name, **fields, "device": DEVICE_NAME, "torch": torch.__version__})
    print(line, flush=True)
    if JSON_OUT:
        JSON_OUT.write(line + "\n")
        JSON_OUT.flush()


def sync():
    if ARGS.device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fn(fn, warmup, reps):
    """Run fn warmup times, then time reps calls; returns (per-call ms list, wall ms per call, first-call s)."""
    t0, first_s = time.perf_counter(), 0.0
    for i in range(warmup):
        fn()
        if i == 0:
            sync()
            first_s = time.perf_counter() - t0  # includes compilation for compiled functions
    sync()
    times = []
    wall0 = time.perf_counter()
    if ARGS.device.startswith("cuda"):
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for s, e in ev:
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in ev]
    else:  # CPU: plain wall clock per call
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    wall_ms = (time.perf_counter() - wall0) * 1e3 / reps
    return times, wall_ms, first_s


def bench(name, make_fn, warmup=5, reps=30, extra=None):
    """Build the callable with make_fn(), time it, emit a result or an error line."""
    try:
        fn = make_fn()
        if ARGS.quick:
            warmup, reps = 1, 2
        times, wall_ms, first_s = time_fn(fn, warmup, reps)
        fields = dict(ms_median=round(statistics.median(times), 4), ms_min=round(min(times), 4),
                      ms_wall_mean=round(wall_ms, 4), reps=reps, first_call_s=round(first_s, 3))
        fields.update(extra(fields) if callable(extra) else (extra or {}))
        emit(name, **fields)
    except Exception as exc:  # keep going whatever happens
        emit(name, error=f"{type(exc).__name__}: {str(exc)[:400]}")


# ---------------------------------------------------------------- Newton-Schulz (single matrix)
def ns5_reference(G, steps=5):
    """Newton-Schulz as torch.optim.Muon (>= 2.9) computes it, with torch.addmm."""
    ns_x = G.bfloat16()
    if G.size(0) > G.size(1):
        ns_x = ns_x.T
    ns_x = ns_x / ns_x.norm().clamp(min=EPS)
    for _ in range(steps):
        gram_matrix = ns_x @ ns_x.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=B, alpha=C)
        ns_x = torch.addmm(ns_x, gram_update, ns_x, beta=A)
    if G.size(0) > G.size(1):
        ns_x = ns_x.T
    return ns_x


def torch_ns_fn():
    """torch's own function, called with whatever arguments its signature takes."""
    from torch.optim import _muon  # PyTorch >= 2.9
    f = _muon._zeropower_via_newtonschulz
    params = inspect.signature(f).parameters
    kw = {"use_addmm": True} if "use_addmm" in params else {}  # newer torch: addmm behind a flag
    return (lambda G: f(G, (A, B, C), 5, EPS, **kw)), kw


# ---------------------------------------------------------------- GPT-2 small's hidden matrices
def gpt2_params(dev):
    L, d = (2, 16) if ARGS.quick else (GPT2_SMALL["layers"], GPT2_SMALL["d"])
    shapes = [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d)]  # c_attn, attn c_proj, mlp c_fc, mlp c_proj
    params = []
    for _ in range(L):
        for out_f, in_f in shapes:
            p = torch.nn.Linear(in_f, out_f, bias=False, device=dev).weight
            p.grad = torch.randn_like(p)  # set once; the same every step
            params.append(p)
    return params


class BatchedMuon:
    """Muon on same-shape groups kept stacked as 3-D tensors (weights, grads, momentum)."""

    def __init__(self, params, lr=0.02, wd=0.1, beta=0.95):
        self.lr, self.wd, self.beta = lr, wd, beta
        by_shape = {}
        for p in params:
            by_shape.setdefault(tuple(p.shape), []).append(p)
        with torch.no_grad():  # stacked once and kept stacked
            # (W, G, M, lr scale) per shape; "match_rms_adamw" scale 0.2*sqrt(max(out, in))
            self.groups = [(torch.stack([p.detach() for p in ps]), torch.stack([p.grad for p in ps]),
                            torch.zeros((len(ps),) + s, device=ps[0].device), 0.2 * math.sqrt(max(s)))
                           for s, ps in by_shape.items()]

    @staticmethod
    def ns5_batched(U, steps=5):
        X = U.bfloat16()
        tall = U.size(-2) > U.size(-1)
        if tall:  # Gram matrix on the smaller side
            X = X.mT
        X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=EPS)  # per-matrix Frobenius norm
        for _ in range(steps):
            gram = torch.bmm(X, X.mT)
            update = torch.baddbmm(gram, gram, gram, beta=B, alpha=C)
            X = torch.baddbmm(X, update, X, beta=A)
        return X.mT if tall else X

    @torch.no_grad()
    def step_impl(self, groups):
        for W, G, M, scale in groups:
            M.lerp_(G, 1 - self.beta)            # EMA momentum
            U = G.lerp(M, self.beta)             # nesterov
            O = self.ns5_batched(U)
            W.mul_(1 - self.lr * self.wd)        # decoupled weight decay
            W.add_(O, alpha=-self.lr * scale)


def make_batched(compiled):
    def make():
        opt = BatchedMuon(gpt2_params(ARGS.device))
        f = torch.compile(opt.step_impl) if compiled else opt.step_impl  # whole step compiled
        return lambda: f(opt.groups)
    return make


def muon_takes(arg):
    """Whether torch.optim.Muon's constructor takes this argument (False before PyTorch 2.9)."""
    try:
        return arg in inspect.signature(torch.optim.Muon.__init__).parameters
    except AttributeError:
        return False


def make_torch_muon(extra_kw=None):
    def make():
        want = dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True, adjust_lr_fn="match_rms_adamw")
        want.update(extra_kw or {})
        kw = {k: v for k, v in want.items() if muon_takes(k)}  # pass only what it takes
        return torch.optim.Muon(gpt2_params(ARGS.device), **kw).step
    return make


def main():
    global ARGS, DEVICE_NAME, JSON_OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 2 reps (CPU smoke test)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurements")
    ap.add_argument("--json-out", help="also write the JSON lines to this file")
    ARGS = ap.parse_args()
    dev = ARGS.device
    if ARGS.json_out:
        JSON_OUT = open(ARGS.json_out, "w")
    try:
        if dev.startswith("cuda"):
            DEVICE_NAME = torch.cuda.get_device_name(torch.device(dev))
    except Exception as exc:
        DEVICE_NAME = f"unavailable ({type(exc).__name__})"
    emit("env", cuda=torch.version.cuda, has_compile=hasattr(torch, "compile"),
         has_muon=hasattr(torch.optim, "Muon"), quick=ARGS.quick)
    torch.manual_seed(0)
    n = 64 if ARGS.quick else 4096
    suffix = f"_{n}"

    # 1. Newton-Schulz on one square bf16 matrix
    G = None
    try:
        G = torch.randn(n, n, device=dev).bfloat16()
    except Exception as exc:  # the measurements below then fail with their own error lines
        emit("setup", error=f"{type(exc).__name__}: {exc}")
    bench("ns5_bf16" + suffix, lambda: (lambda: ns5_reference(G)))

    used_kw = {}  # reported with the result

    def make_torch_fn():
        f, kw = torch_ns_fn()
        used_kw.update(kw)
        Gt = G.clone()  # torch's function divides its bf16 input in place
        return lambda: f(Gt)
    bench("ns5_bf16" + suffix + "_torch_fn", make_torch_fn, extra=lambda _: dict(used_kw))

    def make_compiled_ns():
        f = torch.compile(ns5_reference)  # AttributeError before PyTorch 2.0
        return lambda: f(G)
    if ARGS.no_compile:
        emit("ns5_bf16" + suffix + "_compiled", error="skipped (--no-compile)")
    else:
        bench("ns5_bf16" + suffix + "_compiled", make_compiled_ns)

    # 2. Optimizer steps on GPT-2 small's 48 hidden matrices
    bench("torch_optim_muon_step", make_torch_muon())
    if muon_takes("use_addmm"):  # newer torch defaults to use_addmm=False; time the addmm path too
        bench("torch_optim_muon_step_addmm", make_torch_muon({"use_addmm": True}))
    bench("batched_muon_step_eager", make_batched(False))
    if ARGS.no_compile:
        emit("batched_muon_step_compiled", error="skipped (--no-compile)")
    else:
        bench("batched_muon_step_compiled", make_batched(True))
    bench("fused_adamw_step",
          lambda: torch.optim.AdamW(gpt2_params(dev), lr=1e-3, weight_decay=0.1, fused=True).step)

    # 3. The card's bf16 matmul rate
    m = 256 if ARGS.quick else 8192

    def make_gemm():
        X, Y = (torch.randn(m, m, device=dev, dtype=torch.bfloat16) for _ in range(2))
        return lambda: X @ Y
    bench(f"bf16_gemm_{m}", make_gemm,
          extra=lambda f: {"tflops": round(2 * m ** 3 / (f["ms_median"] * 1e-3) / 1e12, 2)})
    if JSON_OUT:
        JSON_OUT.close()


if __name__ == "__main__":
    main()
