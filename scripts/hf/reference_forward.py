#!/usr/bin/env python3
"""Logits of a Hugging Face model directory, computed in plain PyTorch without transformers.

    reference_forward.py MODEL_DIR TOKENS_JSON OUT_FILE

MODEL_DIR holds config.json (Hugging Face's schema) and model.safetensors, as `muon4j export` writes
them. TOKENS_JSON is {"tokens": [[id, ...], ...]}: sequences of equal length. OUT_FILE receives the
logits, float32 little-endian, in (batch, time, vocabulary) order.

The forward passes follow Hugging Face's modeling code (transformers' models/llama/modeling_llama.py and
models/deepseek_v3/modeling_deepseek_v3.py), read for their conventions and written again here:
  - RMSNorm in float32: weight * (x / sqrt(mean(x^2) + eps)); the latent norms of DeepseekV3 use eps 1e-6;
  - rotary embedding "rotate half": inv_freq = 1 / theta^(arange(0, dim, 2) / dim) in float32, angles
    position * inv_freq, cos and sin of cat(freqs, freqs), q * cos + rotate_half(q) * sin; DeepseekV3 with
    rope_interleave true first reorders each rotary part's channels (2i, 2i+1) to (i, i + dim/2);
  - grouped-query attention with keys and values repeated per query group (repeat_kv), scores scaled by
    head_dim^-0.5 (DeepseekV3: (qk_nope_head_dim + qk_rope_head_dim)^-0.5), a causal mask adding the
    smallest float32 above the diagonal, softmax in float32;
  - SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x));
  - DeepseekV3's mixture of experts: sigmoid scores of a float32 router, e_score_correction_bias added for
    choosing only, group-limited top-k (n_group, topk_group, each group scored by its two best), the chosen
    scores renormalised when norm_topk_prob and times routed_scaling_factor, the experts' outputs added in
    expert order, plus the shared experts of width moe_intermediate_size * n_shared_experts;
  - the head: lm_head, or the embedding when tie_word_embeddings.
Every hyperparameter comes from config.json; every weight from model.safetensors by its Hugging Face name.
Needs PyTorch only (Debian's python3-torch, 1.13 or later); safetensors is read with the standard library.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path):
    """Tensor name -> float32 tensor: an 8-byte little-endian header length, the JSON header, the data."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if end > begin:
            flat = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype)
        else:
            flat = torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"]).to(torch.float32)
    return tensors


def rms_norm(x, weight, eps):
    x = x.to(torch.float32)
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotary(dim, theta, time):
    """cos and sin, (time, dim), of the default rotary type."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    positions = torch.arange(time, dtype=torch.int64).float()
    freqs = positions[:, None] @ inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin, interleave=False):
    """x (batch, heads, time, dim)."""
    if interleave:
        b, h, s, d = x.shape
        x = x.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, n_rep):
    b, kv, s, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


def attend(q, k, v, scaling):
    """q, k, v (batch, heads, time, dim): causal softmax attention, output (batch, time, heads * v_dim)."""
    time = q.shape[2]
    mask = torch.full((time, time), torch.finfo(torch.float32).min).triu(1)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling + mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32)
    out = torch.matmul(probs, v).transpose(1, 2).contiguous()
    return out.reshape(out.shape[0], out.shape[1], -1)


def linear(x, w):
    return x @ w.t()


def mlp(x, w, prefix):
    return linear(F.silu(linear(x, w[prefix + "gate_proj.weight"])) * linear(x, w[prefix + "up_proj.weight"]),
                  w[prefix + "down_proj.weight"])


def llama_attention(x, w, p, c, cos, sin):
    b, t, _ = x.shape
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    q = linear(x, w[p + "q_proj.weight"]).view(b, t, heads, head_dim).transpose(1, 2)
    k = linear(x, w[p + "k_proj.weight"]).view(b, t, kv_heads, head_dim).transpose(1, 2)
    v = linear(x, w[p + "v_proj.weight"]).view(b, t, kv_heads, head_dim).transpose(1, 2)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k, v = repeat_kv(k, heads // kv_heads), repeat_kv(v, heads // kv_heads)
    return linear(attend(q, k, v, head_dim ** -0.5), w[p + "o_proj.weight"])


def deepseek_attention(x, w, p, c, cos, sin):
    b, t, _ = x.shape
    heads = c["num_attention_heads"]
    nope, rope, v_dim = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    qk_dim = nope + rope
    if c.get("q_lora_rank") is None:
        q = linear(x, w[p + "q_proj.weight"])
    else:
        q = linear(rms_norm(linear(x, w[p + "q_a_proj.weight"]), w[p + "q_a_layernorm.weight"], 1e-6), w[p + "q_b_proj.weight"])
    q = q.view(b, t, heads, qk_dim).transpose(1, 2)
    q_pass, q_rot = torch.split(q, [nope, rope], dim=-1)
    compressed = linear(x, w[p + "kv_a_proj_with_mqa.weight"])
    k_pass, k_rot = torch.split(compressed, [c["kv_lora_rank"], rope], dim=-1)
    kv = linear(rms_norm(k_pass, w[p + "kv_a_layernorm.weight"], 1e-6), w[p + "kv_b_proj.weight"])
    kv = kv.view(b, t, heads, nope + v_dim).transpose(1, 2)
    k_pass, value = torch.split(kv, [nope, v_dim], dim=-1)
    k_rot = k_rot.view(b, 1, t, rope)
    interleave = c.get("rope_interleave", True)
    q_rot, k_rot = apply_rotary(q_rot, cos, sin, interleave), apply_rotary(k_rot, cos, sin, interleave)
    k_rot = k_rot.expand(*k_pass.shape[:-1], -1)
    query = torch.cat((q_pass, q_rot), dim=-1)
    key = torch.cat((k_pass, k_rot), dim=-1)
    if c.get("rope_scaling") is not None:
        raise SystemExit("rope_scaling is not computed by this reference")
    return linear(attend(query, key, value, qk_dim ** -0.5), w[p + "o_proj.weight"])


def deepseek_moe(x, w, p, c):
    shape = x.shape
    h = x.reshape(-1, shape[-1])
    experts = c["n_routed_experts"]
    groups, topk_groups, top_k = c.get("n_group", 1), c.get("topk_group", 1), c["num_experts_per_tok"]
    scores = F.linear(h.to(torch.float32), w[p + "gate.weight"].to(torch.float32)).sigmoid()
    for_choice = scores + w[p + "gate.e_score_correction_bias"].unsqueeze(0)
    group_scores = for_choice.view(-1, groups, experts // groups).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=topk_groups, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
    for_choice = for_choice.masked_fill(~score_mask.bool(), 0.0)
    topk_indices = torch.topk(for_choice, k=top_k, dim=-1, sorted=False)[1]
    topk_weights = scores.gather(1, topk_indices)
    if c.get("norm_topk_prob", True):
        topk_weights = topk_weights / (topk_weights.sum(dim=-1, keepdim=True) + 1e-20)
    topk_weights = topk_weights * c["routed_scaling_factor"]
    out = torch.zeros_like(h)
    for e in range(experts):
        tokens, slots = torch.where(topk_indices == e)
        if tokens.numel() > 0:
            y = mlp(h[tokens], w, p + "experts.%d." % e)
            out.index_add_(0, tokens, y * topk_weights[tokens, slots].unsqueeze(-1))
    out = out.view(*shape)
    if c.get("n_shared_experts", 0):
        out = out + mlp(x, w, p + "shared_experts.")
    return out


def forward(config, w, tokens):
    model_type = config["model_type"]
    if model_type not in ("llama", "deepseek_v3"):
        raise SystemExit("model_type %r: this reference computes llama and deepseek_v3" % model_type)
    if config.get("hidden_act", "silu") != "silu":
        raise SystemExit("hidden_act %r: this reference computes silu" % config["hidden_act"])
    if model_type == "llama" and (config.get("attention_bias") or config.get("mlp_bias") or config.get("rope_scaling")):
        raise SystemExit("biases and rope_scaling are not computed by this reference")
    eps = config["rms_norm_eps"]
    theta = config.get("rope_theta", 10000.0)
    time = tokens.shape[1]
    if model_type == "llama":
        dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    else:
        dim = config["qk_rope_head_dim"]
    cos, sin = rotary(dim, theta, time)
    x = w["model.embed_tokens.weight"][tokens]
    for layer in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        if model_type == "llama":
            x = x + llama_attention(a, w, p + "self_attn.", config, cos, sin)
        else:
            x = x + deepseek_attention(a, w, p + "self_attn.", config, cos, sin)
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if model_type == "deepseek_v3" and layer >= config.get("first_k_dense_replace", 0):
            x = x + deepseek_moe(m, w, p + "mlp.", config)
        else:
            x = x + mlp(m, w, p + "mlp.")
    h = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return linear(h, head)


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model_dir, tokens_file, out_file = argv[1:]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    with open(tokens_file) as f:
        tokens = torch.tensor(json.load(f)["tokens"], dtype=torch.int64)
    with torch.no_grad():
        logits = forward(config, weights, tokens).to(torch.float32).contiguous()
    with open(out_file, "wb") as f:
        f.write(logits.numpy().astype("<f4").tobytes())
    print("%s: %s, %d sequences of %d tokens, logits %s, torch %s" % (model_dir, config["model_type"], tokens.shape[0],
                                                                     tokens.shape[1], tuple(logits.shape), torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
