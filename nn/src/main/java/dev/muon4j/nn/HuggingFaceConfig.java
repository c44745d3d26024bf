package dev.muon4j.nn;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A model's {@code config.json} in Hugging Face's schema, both ways: {@link #of} gives the file a
 * muon4j model is written with, {@link #read} the muon4j model a Hugging Face config describes.
 *
 * <p>A dense model ({@link LlamaConfig}) is Hugging Face's {@code LlamaForCausalLM}
 * ({@code transformers/models/llama/configuration_llama.py}): every muon4j field has a Llama field,
 * and the weights' names are Llama's already ({@link DecoderModel}). A Mixture-of-Experts model with
 * latent attention ({@link DeepSeekConfig} with an {@link MlaConfig}) is {@code DeepseekV3ForCausalLM}
 * ({@code transformers/models/deepseek_v3/configuration_deepseek_v3.py}), with these settings where
 * muon4j's model is one case of Hugging Face's:
 * <ul>
 * <li>{@code rope_interleave: false}. Hugging Face's default is true (DeepSeek-V3's own checkpoints
 *     rotate adjacent channel pairs); false selects the rotate-half form that muon4j computes
 *     ({@link MultiHeadLatentAttention}), so the weights need no permutation.</li>
 * <li>{@code n_group = topk_group = 1}: muon4j routes without expert groups ({@link Dispatch}), which is
 *     one group holding every expert. Group-limited routing takes the top-2 scores of a group, so
 *     Hugging Face needs at least two experts.</li>
 * <li>{@code scoring_func: "sigmoid"}, {@code topk_method: "noaux_tc"}, {@code norm_topk_prob: true}: the
 *     sigmoid router whose {@code e_score_correction_bias} serves the choice only, gates renormalised over
 *     the chosen experts, times {@code routed_scaling_factor}. Transformers' DeepseekV3 always routes so; the
 *     first two fields are read by DeepSeek's own modeling code and written for it.</li>
 * <li>{@code rope_scaling: null}: no YaRN, so the softmax scale is 1/√(qk_nope_head_dim + qk_rope_head_dim).</li>
 * <li>{@code num_key_value_heads} = {@code num_attention_heads}: latent attention gives every head its own
 *     key and value, and Hugging Face repeats keys by heads / key-value heads.</li>
 * </ul>
 * A Mixture-of-Experts model with grouped-query attention has no Hugging Face architecture (DeepseekV3's
 * attention is always latent): its config.json holds the same fields under Hugging Face's names, with
 * Llama's attention fields and without {@code architectures} and {@code model_type}, and
 * {@link #architecture} is empty. Settings Hugging Face has no field for (the sequence-wise balance loss
 * α, anything about training) belong in muon4j's own settings file, not here.
 */
public final class HuggingFaceConfig {
    /** {@code architectures[0]} of a dense model. */
    public static final String LLAMA_ARCHITECTURE = "LlamaForCausalLM";
    /** {@code architectures[0]} of a Mixture-of-Experts model with latent attention. */
    public static final String DEEPSEEK_V3_ARCHITECTURE = "DeepseekV3ForCausalLM";
    /** {@code model_type} of a dense model. */
    public static final String LLAMA_TYPE = "llama";
    /** {@code model_type} of a Mixture-of-Experts model with latent attention. */
    public static final String DEEPSEEK_V3_TYPE = "deepseek_v3";

    private HuggingFaceConfig() {
    }

    /**
     * Special token ids of the tokenizer the model was trained with, for {@code bos_token_id} and
     * {@code eos_token_id}; null where it has none (the byte tokenizer).
     */
    public record SpecialTokens(Integer bos, Integer eos) {
        /** No special tokens. */
        public static SpecialTokens none() {
            return new SpecialTokens(null, null);
        }
    }

    /**
     * A dense model's config.json: Hugging Face's {@code LlamaConfig} fields, in the order its
     * {@code __init__} lists them. {@code head_dim} is left out: muon4j's is always
     * {@code hidden_size / num_attention_heads}, Hugging Face's default.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Llama(List<String> architectures, String modelType, int vocabSize, int hiddenSize, int intermediateSize,
                        int numHiddenLayers, int numAttentionHeads, int numKeyValueHeads, String hiddenAct,
                        int maxPositionEmbeddings, double initializerRange, double rmsNormEps, boolean useCache,
                        Integer bosTokenId, Integer eosTokenId, boolean tieWordEmbeddings, double ropeTheta, Object ropeScaling,
                        boolean attentionBias, double attentionDropout, boolean mlpBias, String torchDtype) {
    }

    /**
     * A Mixture-of-Experts model's config.json: Hugging Face's {@code DeepseekV3Config} fields in the order
     * its {@code __init__} lists them, then those of DeepSeek's own config that transformers does not read
     * ({@code scoring_func}, {@code topk_method}). Null {@code q_lora_rank}: queries from {@code q_proj}.
     * Fields that are null are written as null except the attention's ({@code num_key_value_heads} and the
     * latent dimensions), which a model with grouped-query attention or latent attention lacks.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record DeepseekV3(@JsonInclude(JsonInclude.Include.NON_NULL) List<String> architectures,
                             @JsonInclude(JsonInclude.Include.NON_NULL) String modelType, int vocabSize, int hiddenSize,
                             int intermediateSize, int moeIntermediateSize, int numHiddenLayers, int numAttentionHeads,
                             int numKeyValueHeads, @JsonInclude(JsonInclude.Include.NON_NULL) Integer headDim,
                             int nSharedExperts, int nRoutedExperts, double routedScalingFactor,
                             @JsonInclude(JsonInclude.Include.NON_NULL) Integer kvLoraRank, Integer qLoraRank,
                             @JsonInclude(JsonInclude.Include.NON_NULL) Integer qkRopeHeadDim,
                             @JsonInclude(JsonInclude.Include.NON_NULL) Integer vHeadDim,
                             @JsonInclude(JsonInclude.Include.NON_NULL) Integer qkNopeHeadDim, int nGroup, int topkGroup,
                             int numExpertsPerTok, @JsonProperty("first_k_dense_replace") int firstKDenseReplace, boolean normTopkProb, String hiddenAct,
                             int maxPositionEmbeddings, double initializerRange, double rmsNormEps, boolean useCache,
                             Integer bosTokenId, Integer eosTokenId, boolean tieWordEmbeddings, double ropeTheta, Object ropeScaling,
                             @JsonInclude(JsonInclude.Include.NON_NULL) Boolean ropeInterleave, boolean attentionBias,
                             double attentionDropout, String scoringFunc, String topkMethod, String torchDtype) {
    }

    /**
     * The config.json of {@code model}.
     *
     * @param tokens     the tokenizer's special tokens
     * @param torchDtype the weights' dtype as PyTorch names it: {@code "float32"} or {@code "bfloat16"}
     * @return a {@link Llama} or a {@link DeepseekV3} record, for {@code JsonCodec}
     */
    public static Record of(ModelConfig model, SpecialTokens tokens, String torchDtype) {
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(torchDtype, "torchDtype");
        LlamaConfig t = model.trunk();
        if (model instanceof LlamaConfig) {
            return new Llama(List.of(LLAMA_ARCHITECTURE), LLAMA_TYPE, t.vocabSize(), t.width(), t.mlpWidth(), t.layers(), t.heads(),
                    t.kvHeads(), "silu", t.contextLength(), t.initStd(), t.normEps(), true, tokens.bos(), tokens.eos(), t.tiedHead(),
                    t.ropeTheta(), null, false, 0.0, false, torchDtype);
        }
        DeepSeekConfig d = (DeepSeekConfig) model;
        MoeConfig moe = d.moe();
        MlaConfig mla = d.mla();
        boolean latent = mla != null;
        return new DeepseekV3(latent ? List.of(DEEPSEEK_V3_ARCHITECTURE) : null, latent ? DEEPSEEK_V3_TYPE : null, t.vocabSize(),
                t.width(), t.mlpWidth(), moe.expertWidth(), t.layers(), t.heads(), latent ? t.heads() : t.kvHeads(),
                latent ? null : t.headDim(), moe.sharedExperts(), moe.experts(), moe.routedScale(),
                latent ? mla.kvRank() : null, latent && mla.hasQueryRank() ? mla.queryRank() : null,
                latent ? mla.ropeHeadDim() : null, latent ? mla.valueHeadDim() : null, latent ? mla.nopeHeadDim() : null,
                1, 1, moe.activeExperts(), moe.firstDenseLayers(), true, "silu", t.contextLength(), t.initStd(), t.normEps(), true,
                tokens.bos(), tokens.eos(), t.tiedHead(), t.ropeTheta(), null, latent ? Boolean.FALSE : null, false, 0.0, "sigmoid",
                "noaux_tc", torchDtype);
    }

    /** The Hugging Face class that loads {@code model}; empty for a Mixture-of-Experts model with grouped-query attention. */
    public static Optional<String> architecture(ModelConfig model) {
        if (model instanceof LlamaConfig) {
            return Optional.of(LLAMA_ARCHITECTURE);
        }
        return ((DeepSeekConfig) model).mla() != null ? Optional.of(DEEPSEEK_V3_ARCHITECTURE) : Optional.empty();
    }

    /**
     * How muon4j's model relates to the Hugging Face architecture its config.json names, in words, for
     * muon4j's settings file and for people: empty for a dense model, which is Llama exactly.
     */
    public static List<String> notes(ModelConfig model) {
        List<String> notes = new ArrayList<>();
        if (!(model instanceof DeepSeekConfig d)) {
            return notes;
        }
        if (d.mla() == null) {
            notes.add("no Hugging Face architecture: DeepseekV3 has latent attention only, this model grouped-query attention; "
                    + "config.json holds its fields under Hugging Face's names without architectures and model_type");
        } else {
            notes.add("rope_interleave is false: muon4j rotates the halves of each rotary part (channel i with i + "
                    + "qk_rope_head_dim/2); DeepSeek-V3's own checkpoints rotate adjacent pairs (rope_interleave true), the same "
                    + "model with the rotary rows of q_proj/q_b_proj and kv_a_proj_with_mqa permuted");
        }
        notes.add("no expert groups: n_group = topk_group = 1, every expert in one group");
        notes.add("routing: sigmoid scores, e_score_correction_bias added for the choice only, the chosen scores renormalised "
                + "and times routed_scaling_factor; ties go to the lower expert id (torch.topk leaves them unspecified)");
        notes.add("no YaRN (rope_scaling null) and no multi-token prediction layers");
        if (d.moe().sharedExperts() == 0) {
            notes.add("no shared experts: Hugging Face builds shared experts of width 0, which add nothing");
        }
        if (d.moe().experts() < 2) {
            notes.add("one routed expert: Hugging Face's group-limited routing needs at least two");
        }
        if (d.moe().balanceLossAlpha() > 0) {
            notes.add("the sequence-wise balance loss (alpha " + d.moe().balanceLossAlpha() + ") is a training setting "
                    + "Hugging Face's config has no field for");
        }
        return notes;
    }

    // ------------------------------------------------------------------------------------------ reading

    /**
     * The muon4j model a Hugging Face config.json describes: a {@code llama} or a {@code deepseek_v3}
     * model whose every setting muon4j computes the same way. Fields Hugging Face would default are
     * defaulted as its config classes do; fields about running rather than the model (use_cache,
     * dropout, dtype, token ids) are ignored.
     *
     * @param json   the parsed config.json
     * @param source names the file in errors
     * @throws IllegalArgumentException naming the file, the field and its value when the model type is
     *                                  neither, a field is missing or of the wrong type, or a setting asks for
     *                                  something muon4j's model does not compute (biases, another activation,
     *                                  RoPE scaling, interleaved rotary channels, expert groups, softmax routing)
     */
    public static ModelConfig read(Map<String, ?> json, String source) {
        Fields f = new Fields(json, source);
        String type = f.string("model_type", null);
        if (LLAMA_TYPE.equals(type)) {
            return readLlama(f);
        }
        if (DEEPSEEK_V3_TYPE.equals(type)) {
            return readDeepseekV3(f);
        }
        throw new IllegalArgumentException(source + ": model_type is " + (type == null ? "missing" : "\"" + type + "\"")
                + "; muon4j reads \"" + LLAMA_TYPE + "\" (" + LLAMA_ARCHITECTURE + ") and \"" + DEEPSEEK_V3_TYPE + "\" ("
                + DEEPSEEK_V3_ARCHITECTURE + ")");
    }

    private static LlamaConfig readLlama(Fields f) {
        f.require("hidden_act", "silu", "silu");
        f.requireFalse("attention_bias");
        f.requireFalse("mlp_bias");
        f.require("pretraining_tp", 1L, 1L);
        f.requireNoRopeScaling();
        LlamaConfig trunk = trunk(f, 2048, 1e-6, false);
        Object headDim = f.json.get("head_dim");
        if (headDim != null && f.integer("head_dim", 0) != trunk.headDim()) {
            throw f.unsupported("head_dim", headDim, "muon4j's head dimension is hidden_size / num_attention_heads = " + trunk.headDim());
        }
        return trunk;
    }

    private static DeepSeekConfig readDeepseekV3(Fields f) {
        f.require("hidden_act", "silu", "silu");
        f.requireFalse("attention_bias");
        f.require("scoring_func", "sigmoid", "sigmoid");
        f.require("topk_method", "noaux_tc", "noaux_tc");
        f.require("moe_layer_freq", 1L, 1L);
        f.require("norm_topk_prob", true, true);
        f.requireNoRopeScaling();
        Object interleave = f.json.containsKey("rope_interleave") ? f.json.get("rope_interleave") : Boolean.TRUE;
        if (!Boolean.FALSE.equals(interleave)) {
            throw f.unsupported("rope_interleave", f.json.containsKey("rope_interleave") ? interleave : new Object() {
                @Override
                public String toString() {
                    return "absent (true by default)";
                }
            }, "muon4j rotates the halves of each rotary part (rope_interleave false); interleaved checkpoints need their "
                            + "rotary rows permuted first");
        }
        int groups = f.integer("n_group", 1);
        int topkGroups = f.integer("topk_group", 1);
        if (topkGroups != groups) {
            throw f.unsupported("topk_group", topkGroups, "muon4j routes over all experts, which group-limited routing does only "
                    + "when topk_group equals n_group (" + groups + ")");
        }
        int heads = f.integer("num_attention_heads", null);
        Object kv = f.json.get("num_key_value_heads");
        if (kv != null && f.integer("num_key_value_heads", null) != heads) {
            throw f.unsupported("num_key_value_heads", kv, "latent attention gives each of the " + heads + " heads its own key and value");
        }
        LlamaConfig trunk = trunk(f, 4096, 1e-6, true);
        Object queryRank = f.json.get("q_lora_rank");
        MlaConfig mla = new MlaConfig(queryRank == null ? 0 : f.integer("q_lora_rank", null), f.integer("kv_lora_rank", null),
                f.integer("qk_nope_head_dim", null), f.integer("qk_rope_head_dim", null), f.integer("v_head_dim", null));
        MoeConfig moe = new MoeConfig(f.integer("n_routed_experts", null), f.integer("num_experts_per_tok", null),
                f.integer("moe_intermediate_size", null), f.integer("n_shared_experts", null),
                f.number("routed_scaling_factor", null), f.integer("first_k_dense_replace", 0));
        return new DeepSeekConfig(trunk, moe, mla);
    }

    /** The trunk's fields; {@code latent}: key-value heads are the heads (latent attention). */
    private static LlamaConfig trunk(Fields f, int defaultPositions, double defaultEps, boolean latent) {
        int heads = f.integer("num_attention_heads", null);
        int kvHeads = latent ? heads : f.integer("num_key_value_heads", heads);
        double theta = f.ropeTheta();
        int vocab = f.integer("vocab_size", null);
        int width = f.integer("hidden_size", null);
        int layers = f.integer("num_hidden_layers", null);
        int mlpWidth = f.integer("intermediate_size", null);
        int positions = f.integer("max_position_embeddings", defaultPositions);
        boolean tied = f.bool("tie_word_embeddings", false);
        double eps = f.number("rms_norm_eps", defaultEps);
        double initStd = f.number("initializer_range", 0.02);
        try {
            return new LlamaConfig(vocab, width, layers, heads, kvHeads, mlpWidth, positions, tied, theta, eps, initStd);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(f.source + ": " + e.getMessage(), e);
        }
    }

    /** Typed access to config.json's fields, each error naming the file, the field and its value. */
    private record Fields(Map<String, ?> json, String source) {
        int integer(String key, Integer fallback) {
            Object v = json.get(key);
            if (v == null && fallback != null) {
                return fallback;
            }
            if (!(v instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()) || Math.abs(n.doubleValue()) > Integer.MAX_VALUE) {
                throw wrong(key, v, "an integer");
            }
            return n.intValue();
        }

        double number(String key, Double fallback) {
            Object v = json.get(key);
            if (v == null && fallback != null) {
                return fallback;
            }
            if (!(v instanceof Number n)) {
                throw wrong(key, v, "a number");
            }
            return n.doubleValue();
        }

        boolean bool(String key, boolean fallback) {
            Object v = json.get(key);
            if (v == null) {
                return fallback;
            }
            if (!(v instanceof Boolean b)) {
                throw wrong(key, v, "true or false");
            }
            return b;
        }

        String string(String key, String fallback) {
            Object v = json.get(key);
            if (v == null) {
                return fallback;
            }
            if (!(v instanceof String s)) {
                throw wrong(key, v, "a string");
            }
            return s;
        }

        /** The field, or {@code fallback} when absent, must equal {@code expected}. */
        void require(String key, Object expected, Object fallback) {
            Object v = json.containsKey(key) ? json.get(key) : fallback;
            boolean same = v instanceof Number n && expected instanceof Number e ? n.doubleValue() == e.doubleValue() : Objects.equals(v, expected);
            if (!same) {
                throw unsupported(key, v, "muon4j's model has " + key + " " + describe(expected));
            }
        }

        void requireFalse(String key) {
            if (bool(key, false)) {
                throw unsupported(key, true, "muon4j's projections have no bias");
            }
        }

        /** RoPE without scaling: {@code rope_scaling} null or absent, or of type "default" (also under v5's {@code rope_parameters}). */
        void requireNoRopeScaling() {
            for (String key : List.of("rope_scaling", "rope_parameters")) {
                Object v = json.get(key);
                if (v == null) {
                    continue;
                }
                if (!(v instanceof Map<?, ?> m)) {
                    throw wrong(key, v, "an object or null");
                }
                Object type = m.containsKey("rope_type") ? m.get("rope_type") : m.get("type");
                if (type != null && !"default".equals(type)) {
                    throw unsupported(key, v, "muon4j's rotary embedding has no scaling (rope_type \"default\")");
                }
            }
        }

        /** θ: {@code rope_theta}, or transformers 5's {@code rope_parameters.rope_theta}; 10000 when neither. */
        double ropeTheta() {
            if (json.get("rope_parameters") instanceof Map<?, ?> m && m.get("rope_theta") != null) {
                if (!(m.get("rope_theta") instanceof Number n)) {
                    throw wrong("rope_parameters.rope_theta", m.get("rope_theta"), "a number");
                }
                return n.doubleValue();
            }
            return number("rope_theta", 10000.0);
        }

        IllegalArgumentException wrong(String key, Object value, String what) {
            return new IllegalArgumentException(source + ": " + key + " must be " + what + ", got "
                    + (value == null ? (json.containsKey(key) ? "null" : "nothing (it is missing)") : describe(value)));
        }

        IllegalArgumentException unsupported(String key, Object value, String why) {
            return new IllegalArgumentException(source + ": " + key + " is " + describe(value) + ", which muon4j's model does not "
                    + "compute: " + why);
        }

        private static String describe(Object value) {
            return value instanceof String s ? "\"" + s + "\"" : String.valueOf(value).toLowerCase(Locale.ROOT).equals("null") ? "null"
                    : String.valueOf(value);
        }
    }
}
