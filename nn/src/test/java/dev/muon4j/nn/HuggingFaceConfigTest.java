package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** config.json in Hugging Face's schema: the fields written, the model read back, and what is refused. */
class HuggingFaceConfigTest {
    private static final LlamaConfig LLAMA = new LlamaConfig(256, 192, 4, 4, 2, 512, 128, false, 10000, 1e-5, 0.02);
    private static final DeepSeekConfig MOONLIGHT_LIKE = new DeepSeekConfig(new LlamaConfig(256, 192, 4, 4, 4, 512, 128, true, 50000, 1e-5, 0.02),
            new MoeConfig(16, 2, 128, 2, 2.446, 1), new MlaConfig(0, 48, 48, 24, 48));

    private static Map<String, Object> json(ModelConfig model, HuggingFaceConfig.SpecialTokens tokens) {
        return JsonCodec.toObject(HuggingFaceConfig.of(model, tokens, "float32"));
    }

    @Test
    void aDenseModelIsLlamaUnderLlamasFieldNames() {
        Map<String, Object> json = json(LLAMA, new HuggingFaceConfig.SpecialTokens(50256, 50256));
        assertEquals(List.of("LlamaForCausalLM"), json.get("architectures"));
        assertEquals("llama", json.get("model_type"));
        assertEquals(192L, json.get("hidden_size"));
        assertEquals(512L, json.get("intermediate_size"));
        assertEquals(4L, json.get("num_hidden_layers"));
        assertEquals(4L, json.get("num_attention_heads"));
        assertEquals(2L, json.get("num_key_value_heads"));
        assertEquals(128L, json.get("max_position_embeddings"));
        assertEquals(256L, json.get("vocab_size"));
        assertEquals(1e-5, json.get("rms_norm_eps"));
        assertEquals(10000.0, json.get("rope_theta"));
        assertEquals(false, json.get("tie_word_embeddings"));
        assertEquals("silu", json.get("hidden_act"));
        assertEquals(false, json.get("attention_bias"));
        assertEquals(false, json.get("mlp_bias"));
        assertEquals(50256L, json.get("bos_token_id"));
        assertEquals(50256L, json.get("eos_token_id"));
        assertEquals("float32", json.get("torch_dtype"));
        assertTrue(json.containsKey("rope_scaling") && json.get("rope_scaling") == null);
        assertFalse(json.containsKey("head_dim"), "muon4j's head dimension is Hugging Face's default");
        assertEquals(LLAMA, HuggingFaceConfig.read(json, "config.json"));
        assertEquals(Optional.of("LlamaForCausalLM"), HuggingFaceConfig.architecture(LLAMA));
        assertEquals(List.of(), HuggingFaceConfig.notes(LLAMA));
    }

    @Test
    void theByteTokenizersModelHasNoSpecialTokens() {
        Map<String, Object> json = json(LLAMA, HuggingFaceConfig.SpecialTokens.none());
        assertTrue(json.containsKey("bos_token_id") && json.get("bos_token_id") == null,
                "null, not absent: Llama's defaults (1 and 2) would be wrong");
        assertTrue(json.containsKey("eos_token_id") && json.get("eos_token_id") == null);
    }

    @Test
    void aMixtureOfExpertsModelWithLatentAttentionIsDeepseekV3() {
        Map<String, Object> json = json(MOONLIGHT_LIKE, HuggingFaceConfig.SpecialTokens.none());
        assertEquals(List.of("DeepseekV3ForCausalLM"), json.get("architectures"));
        assertEquals("deepseek_v3", json.get("model_type"));
        assertEquals(16L, json.get("n_routed_experts"));
        assertEquals(2L, json.get("n_shared_experts"));
        assertEquals(2L, json.get("num_experts_per_tok"));
        assertEquals(128L, json.get("moe_intermediate_size"));
        assertEquals(512L, json.get("intermediate_size"));
        assertEquals(1L, json.get("first_k_dense_replace"));
        assertEquals(2.446, json.get("routed_scaling_factor"));
        assertEquals("sigmoid", json.get("scoring_func"));
        assertEquals("noaux_tc", json.get("topk_method"));
        assertEquals(1L, json.get("n_group"));
        assertEquals(1L, json.get("topk_group"));
        assertEquals(true, json.get("norm_topk_prob"));
        assertTrue(json.containsKey("q_lora_rank") && json.get("q_lora_rank") == null, "no query rank is null, as Moonlight's");
        assertEquals(48L, json.get("kv_lora_rank"));
        assertEquals(48L, json.get("qk_nope_head_dim"));
        assertEquals(24L, json.get("qk_rope_head_dim"));
        assertEquals(48L, json.get("v_head_dim"));
        assertEquals(4L, json.get("num_key_value_heads"));
        assertEquals(false, json.get("rope_interleave"));
        assertEquals(true, json.get("tie_word_embeddings"));
        assertEquals(50000.0, json.get("rope_theta"));
        assertEquals(MOONLIGHT_LIKE, HuggingFaceConfig.read(json, "config.json"));
        assertTrue(HuggingFaceConfig.notes(MOONLIGHT_LIKE).stream().anyMatch(n -> n.contains("rope_interleave")));
    }

    @Test
    void aQueryRankIsWrittenAndReadBack() {
        DeepSeekConfig model = new DeepSeekConfig(MOONLIGHT_LIKE.trunk(), MOONLIGHT_LIKE.moe(), new MlaConfig(32, 48, 48, 24, 40));
        Map<String, Object> json = json(model, HuggingFaceConfig.SpecialTokens.none());
        assertEquals(32L, json.get("q_lora_rank"));
        assertEquals(model, HuggingFaceConfig.read(json, "config.json"));
    }

    @Test
    void groupedQueryAttentionUnderExpertsHasNoHuggingFaceArchitecture() {
        DeepSeekConfig model = new DeepSeekConfig(LLAMA, new MoeConfig(8, 2, 64, 1, 1.0, 1));
        Map<String, Object> json = json(model, HuggingFaceConfig.SpecialTokens.none());
        assertFalse(json.containsKey("architectures"));
        assertFalse(json.containsKey("model_type"));
        assertFalse(json.containsKey("kv_lora_rank"));
        assertEquals(2L, json.get("num_key_value_heads"));
        assertEquals(48L, json.get("head_dim"));
        assertEquals(Optional.empty(), HuggingFaceConfig.architecture(model));
        assertTrue(HuggingFaceConfig.notes(model).getFirst().startsWith("no Hugging Face architecture"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceConfig.read(json, "dir/config.json"));
        assertTrue(e.getMessage().startsWith("dir/config.json: model_type is missing"), e.getMessage());
    }

    @Test
    void hugginFacesDefaultsFillWhatIsAbsent() {
        Map<String, Object> json = new LinkedHashMap<>(Map.of("model_type", "llama", "vocab_size", 100L, "hidden_size", 64L,
                "intermediate_size", 128L, "num_hidden_layers", 2L, "num_attention_heads", 4L, "use_cache", true,
                "transformers_version", "4.57.0"));
        assertEquals(new LlamaConfig(100, 64, 2, 4, 4, 128, 2048, false, 10000, 1e-6, 0.02), HuggingFaceConfig.read(json, "c"));
        // transformers 5 keeps θ under rope_parameters
        json.put("rope_parameters", Map.of("rope_type", "default", "rope_theta", 500000.0));
        assertEquals(500000.0, ((LlamaConfig) HuggingFaceConfig.read(json, "c")).ropeTheta());
    }

    @Test
    void whatMuon4jDoesNotComputeIsRefusedNamingTheField() {
        Map<String, Object> llama = JsonCodec.toObject(HuggingFaceConfig.of(LLAMA, HuggingFaceConfig.SpecialTokens.none(), "float32"));
        assertRefused(llama, "attention_bias", true, "c: attention_bias is true, which muon4j's model does not compute");
        assertRefused(llama, "mlp_bias", true, "c: mlp_bias is true");
        assertRefused(llama, "hidden_act", "gelu", "c: hidden_act is \"gelu\"");
        assertRefused(llama, "rope_scaling", Map.of("rope_type", "llama3", "factor", 8.0), "c: rope_scaling is {");
        assertRefused(llama, "head_dim", 64L, "c: head_dim is 64");
        assertRefused(llama, "hidden_size", "192", "c: hidden_size must be an integer, got \"192\"");
        assertRefused(llama, "hidden_size", null, "c: hidden_size must be an integer, got null");
        assertRefused(llama, "model_type", "mistral", "c: model_type is \"mistral\"; muon4j reads \"llama\"");
        assertRefused(llama, "num_key_value_heads", 3L, "c: num_key_value_heads 3 does not divide heads 4"
                .replace("num_key_value_heads 3 does not divide heads 4", "model config: kvHeads 3 do not divide heads 4"));

        Map<String, Object> deepseek = JsonCodec.toObject(HuggingFaceConfig.of(MOONLIGHT_LIKE, HuggingFaceConfig.SpecialTokens.none(), "float32"));
        assertRefused(deepseek, "rope_interleave", true, "c: rope_interleave is true");
        Map<String, Object> noInterleave = new LinkedHashMap<>(deepseek);
        noInterleave.remove("rope_interleave");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceConfig.read(noInterleave, "c"));
        assertTrue(e.getMessage().startsWith("c: rope_interleave is absent (true by default)"), e.getMessage());
        assertRefused(deepseek, "topk_group", 4L, "c: topk_group is 4");
        assertRefused(deepseek, "scoring_func", "softmax", "c: scoring_func is \"softmax\"");
        assertRefused(deepseek, "norm_topk_prob", false, "c: norm_topk_prob is false");
        assertRefused(deepseek, "num_key_value_heads", 2L, "c: num_key_value_heads is 2");
        assertRefused(deepseek, "rope_scaling", Map.of("type", "yarn", "factor", 40.0), "c: rope_scaling is {");
        Map<String, Object> grouped = new LinkedHashMap<>(deepseek);
        grouped.put("n_group", 8L);
        grouped.put("topk_group", 8L);
        assertEquals(MOONLIGHT_LIKE, HuggingFaceConfig.read(grouped, "c"), "every group chosen is routing over all experts");
        Map<String, Object> queryRank = new LinkedHashMap<>(deepseek);
        queryRank.put("q_lora_rank", 16L);
        assertEquals(16, ((DeepSeekConfig) HuggingFaceConfig.read(queryRank, "c")).mla().queryRank());
        assertNull(deepseek.get("q_lora_rank"));
    }

    private static void assertRefused(Map<String, Object> json, String key, Object value, String messageStart) {
        Map<String, Object> changed = new LinkedHashMap<>(json);
        changed.put(key, value);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceConfig.read(changed, "c"));
        assertTrue(e.getMessage().startsWith(messageStart), () -> key + ": " + e.getMessage());
    }
}
