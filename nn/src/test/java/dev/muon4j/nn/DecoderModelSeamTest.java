package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.Parameter;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The dense model as blocks of {@link Attention} and {@link FeedForward}: names, order, and the per-head projections. */
class DecoderModelSeamTest {
    static final LlamaConfig CONFIG = new LlamaConfig(32, 16, 2, 4, 2, 24, 8, false, 10000, 1e-5, 0.02);

    @Test
    void parametersKeepHuggingFaceNamesInBlockOrder() {
        List<String> names = new DecoderModel(CONFIG).parameters().stream().map(Parameter::name).toList();
        List<String> block = List.of("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight",
                "mlp.up_proj.weight", "mlp.down_proj.weight");
        assertEquals(1 + 2 * block.size() + 2, names.size());
        assertEquals("model.embed_tokens.weight", names.getFirst());
        for (int layer = 0; layer < 2; layer++) {
            for (int i = 0; i < block.size(); i++) {
                assertEquals("model.layers." + layer + "." + block.get(i), names.get(1 + layer * block.size() + i));
            }
        }
        assertEquals(List.of("model.norm.weight", "lm_head.weight"), names.subList(names.size() - 2, names.size()));
    }

    @Test
    void queryAndKeyProjectionsAreHeadRowsOfTheHeadDimension() {
        DecoderModel model = new DecoderModel(CONFIG);
        List<Attention.HeadRows> rows = model.headRows();
        assertEquals(List.of("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"),
                rows.stream().map(r -> r.parameter().name()).toList());
        for (Attention.HeadRows r : rows) {
            assertEquals(CONFIG.headDim(), r.rowsPerHead());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Attention.HeadRows(Parameter.matrix("w", 10, 4), 3));
        assertTrue(e.getMessage().contains("w") && e.getMessage().contains("10 rows"), e.getMessage());
    }

    @Test
    void qkClipRefusesMaximaOfTheWrongCount() {
        LanguageModel model = new DecoderModel(CONFIG);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.qkClip(10, new double[7]));
        assertTrue(e.getMessage().contains("7 max logits") && e.getMessage().contains("2 layers of 4 heads"), e.getMessage());
        assertEquals(2 * 4, model.maxLogits().length);
    }

    @Test
    void configsComeBackFromTheirMapsWithTheirFamily() {
        assertEquals(CONFIG, ModelConfig.fromMap(CONFIG.toMap()), "a Llama config has no family key and reads back");
        assertEquals(ModelConfig.Family.LLAMA, CONFIG.family());
        DeepSeekConfig moe = new DeepSeekConfig(CONFIG, new MoeConfig(8, 2, 12, 1, 2.446, 1));
        java.util.Map<String, Object> m = moe.toMap();
        assertEquals("deepseek", m.get("model"));
        assertEquals(moe, ModelConfig.fromMap(m));
        assertEquals(ModelConfig.Family.DEEPSEEK, moe.family());
        DeepSeekConfig latent = new DeepSeekConfig(CONFIG, new MoeConfig(8, 2, 12, 1, 2.446, 1), new MlaConfig(0, 8, 4, 2, 4));
        assertEquals(latent, ModelConfig.fromMap(latent.toMap()), "with latent attention");
        java.util.Map<String, Object> unknown = new java.util.LinkedHashMap<>(m);
        unknown.put("model", "mamba");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromMap(unknown));
        assertTrue(e.getMessage().contains("unknown model family mamba"), e.getMessage());
        java.util.Map<String, Object> noMoe = new java.util.LinkedHashMap<>(m);
        noMoe.remove("moe");
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromMap(noMoe));
        assertTrue(e.getMessage().contains("\"moe\""), e.getMessage());
    }

    @Test
    void stackedExpertsAreSavedOneTensorPerExpertWithHuggingFaceNames() {
        Parameter stacked = Parameter.stackedMatrices("model.layers.1.mlp.experts.down_proj.weight", 3, 4, 5, new float[60],
                new float[60]);
        List<ExpertTensors.Piece> pieces = ExpertTensors.pieces(stacked);
        assertEquals(List.of("model.layers.1.mlp.experts.0.down_proj.weight", "model.layers.1.mlp.experts.1.down_proj.weight",
                "model.layers.1.mlp.experts.2.down_proj.weight"), pieces.stream().map(ExpertTensors.Piece::name).toList());
        for (int e = 0; e < 3; e++) {
            assertEquals(List.of(4, 5), java.util.Arrays.stream(pieces.get(e).shape()).boxed().toList());
            assertEquals(e * 20, pieces.get(e).offset());
            assertEquals(20, pieces.get(e).length());
        }
        Parameter router = Parameter.matrix("model.layers.1.mlp.gate.weight", 3, 5);
        assertEquals(List.of("model.layers.1.mlp.gate.weight"), ExpertTensors.pieces(router).stream().map(ExpertTensors.Piece::name).toList());
        Parameter shared = Parameter.matrix("model.layers.1.mlp.shared_experts.up_proj.weight", 4, 5);
        assertEquals(1, ExpertTensors.pieces(shared).size(), "shared experts are one SwiGLU, one tensor each");
    }
}
