package dev.muon4j.nn;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The shape of {@link MultiHeadLatentAttention} (DeepSeek-V2, arXiv 2405.04434, §2.1; DeepSeek-V3,
 * arXiv 2412.19437, §2.1.1; Hugging Face {@code DeepseekV3Config}, whose field names are given in
 * brackets). A query or key head has Dn content columns and Dr rotary columns; a value head Dv.
 *
 * <p>Moonlight-16B-A3B ({@link #moonlight()}) has no query rank: its Hugging Face config.json sets
 * {@code q_lora_rank} to null, so its queries come from a plain {@code q_proj}; {@code kv_lora_rank} 512,
 * {@code qk_nope_head_dim} 128, {@code qk_rope_head_dim} 64, {@code v_head_dim} 128. The same numbers are
 * in Kimi-VL's text config (the Moonlight language model) and in the Megatron-LM arguments for Moonlight
 * ({@code --kv-lora-rank 512 --qk-head-dim 128 --qk-pos-emb-head-dim 64 --v-head-dim 128}, no
 * {@code --q-lora-rank}). DeepSeek-V3 itself has a query rank of 1536 (the {@code DeepseekV3Config} default).
 *
 * @param queryRank    R_q, the query latent's width [{@code q_lora_rank}]; 0 for none (queries from
 *                     {@code q_proj}, as Hugging Face does for {@code q_lora_rank = None})
 * @param kvRank       R_kv, the key-value latent's width [{@code kv_lora_rank}]
 * @param nopeHeadDim  Dn, a query or key head's content (no-position) columns [{@code qk_nope_head_dim}]
 * @param ropeHeadDim  Dr, a query or key head's rotary columns [{@code qk_rope_head_dim}]; even
 * @param valueHeadDim Dv, a value head's columns [{@code v_head_dim}]
 */
public record MlaConfig(int queryRank, int kvRank, int nopeHeadDim, int ropeHeadDim, int valueHeadDim) {
    public MlaConfig {
        if (queryRank < 0) {
            throw new IllegalArgumentException("MLA config: query rank must be >= 0 (0 for none), got " + queryRank);
        }
        if (kvRank < 1) {
            throw new IllegalArgumentException("MLA config: key-value rank must be >= 1, got " + kvRank);
        }
        if (nopeHeadDim < 1) {
            throw new IllegalArgumentException("MLA config: content head dimension must be >= 1, got " + nopeHeadDim);
        }
        if (ropeHeadDim < 2 || ropeHeadDim % 2 != 0) {
            throw new IllegalArgumentException("MLA config: rotary head dimension must be even and >= 2, got " + ropeHeadDim);
        }
        if (valueHeadDim < 1) {
            throw new IllegalArgumentException("MLA config: value head dimension must be >= 1, got " + valueHeadDim);
        }
    }

    /** Moonlight-16B-A3B's attention (moonshotai/Moonlight-16B-A3B config.json): no query rank, R_kv 512, Dn 128, Dr 64, Dv 128. */
    public static MlaConfig moonlight() {
        return new MlaConfig(0, 512, 128, 64, 128);
    }

    /** Dn + Dr, a query or key head's columns; the softmax scale is 1/√ of it. */
    public int queryHeadDim() {
        return nopeHeadDim + ropeHeadDim;
    }

    /** Whether queries go through a latent ({@code q_a_proj}, {@code q_a_layernorm}, {@code q_b_proj}). */
    public boolean hasQueryRank() {
        return queryRank > 0;
    }

    /** Field name → value, for JSON. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("query_rank", queryRank);
        m.put("kv_rank", kvRank);
        m.put("nope_head_dim", nopeHeadDim);
        m.put("rope_head_dim", ropeHeadDim);
        m.put("value_head_dim", valueHeadDim);
        return m;
    }

    /** Inverse of {@link #toMap()}. */
    public static MlaConfig fromMap(Map<String, ?> m) {
        return new MlaConfig(LlamaConfig.intOf(m, "query_rank"), LlamaConfig.intOf(m, "kv_rank"), LlamaConfig.intOf(m, "nope_head_dim"),
                LlamaConfig.intOf(m, "rope_head_dim"), LlamaConfig.intOf(m, "value_head_dim"));
    }
}
