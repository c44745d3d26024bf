package dev.muon4j.nn;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shape of a Llama-style decoder: pre-norm blocks of RMSNorm → causal self-attention with rotary
 * positions and grouped key/value heads → residual, RMSNorm → SwiGLU MLP → residual; a final
 * RMSNorm and a linear head (or the embedding table reused as the head when tied).
 *
 * @param vocabSize     V, tokens
 * @param width         C, the residual stream width
 * @param layers        number of blocks
 * @param heads         H, query heads; must divide C
 * @param kvHeads       K, key/value heads; must divide H (K = H is plain multi-head attention)
 * @param mlpWidth      F, the SwiGLU hidden width
 * @param contextLength T, the longest sequence
 * @param tiedHead      reuse the embedding table as the output head
 * @param ropeTheta     RoPE base (10000 in Llama 2)
 * @param normEps       RMSNorm epsilon
 * @param initStd       standard deviation of the initial weights (0.02, as GPT-2 and Llama)
 */
public record LlamaConfig(int vocabSize, int width, int layers, int heads, int kvHeads, int mlpWidth,
                          int contextLength, boolean tiedHead, double ropeTheta, double normEps, double initStd) {

    public LlamaConfig {
        positive("vocabSize", vocabSize);
        positive("width", width);
        positive("layers", layers);
        positive("heads", heads);
        positive("kvHeads", kvHeads);
        positive("mlpWidth", mlpWidth);
        positive("contextLength", contextLength);
        if (width % heads != 0) {
            throw new IllegalArgumentException("model config: heads " + heads + " do not divide width " + width);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("model config: kvHeads " + kvHeads + " do not divide heads " + heads);
        }
        if ((width / heads) % 2 != 0) {
            throw new IllegalArgumentException("model config: head dimension " + width / heads + " (width/heads) must be even for rotary embeddings");
        }
        if (!(ropeTheta > 1) || !Double.isFinite(ropeTheta)) {
            throw new IllegalArgumentException("model config: ropeTheta must be > 1, got " + ropeTheta);
        }
        if (!(normEps > 0) || !(initStd > 0) || !Double.isFinite(initStd)) {
            throw new IllegalArgumentException("model config: normEps and initStd must be > 0, got " + normEps + ", " + initStd);
        }
    }

    private static void positive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException("model config: " + name + " must be >= 1, got " + value);
        }
    }

    /**
     * The standard small config: byte-level (V = 256), 6 layers, width 384, 6 heads, SwiGLU width
     * 1024, context 256, untied head: 10.8M parameters.
     */
    public static LlamaConfig standardSmall() {
        return new LlamaConfig(256, 384, 6, 6, 6, 1024, 256, false, 10000, 1e-5, 0.02);
    }

    /** D, the head dimension. */
    public int headDim() {
        return width / heads;
    }

    public LlamaConfig withVocabSize(int v) {
        return new LlamaConfig(v, width, layers, heads, kvHeads, mlpWidth, contextLength, tiedHead, ropeTheta, normEps, initStd);
    }

    public LlamaConfig withContextLength(int t) {
        return new LlamaConfig(vocabSize, width, layers, heads, kvHeads, mlpWidth, t, tiedHead, ropeTheta, normEps, initStd);
    }

    /** Number of parameters of a model with this config. */
    public long parameterCount() {
        long c = width;
        long d = headDim();
        long perLayer = 2 * c + c * heads * d + 2 * c * kvHeads * d + heads * d * c + 3 * c * mlpWidth;
        return vocabSize * c + layers * perLayer + c + (tiedHead ? 0 : vocabSize * c);
    }

    /** Field name → value, for JSON. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vocab_size", vocabSize);
        m.put("width", width);
        m.put("layers", layers);
        m.put("heads", heads);
        m.put("kv_heads", kvHeads);
        m.put("mlp_width", mlpWidth);
        m.put("context_length", contextLength);
        m.put("tied_head", tiedHead);
        m.put("rope_theta", ropeTheta);
        m.put("norm_eps", normEps);
        m.put("init_std", initStd);
        return m;
    }

    /** Inverse of {@link #toMap()}; numbers may be any {@link Number}. */
    public static LlamaConfig fromMap(Map<String, ?> m) {
        return new LlamaConfig(intOf(m, "vocab_size"), intOf(m, "width"), intOf(m, "layers"), intOf(m, "heads"),
                intOf(m, "kv_heads"), intOf(m, "mlp_width"), intOf(m, "context_length"), boolOf(m, "tied_head"),
                doubleOf(m, "rope_theta"), doubleOf(m, "norm_eps"), doubleOf(m, "init_std"));
    }

    private static Object field(Map<String, ?> m, String key) {
        Object v = m.get(key);
        if (v == null) {
            throw new IllegalArgumentException("model config lacks field " + key);
        }
        return v;
    }

    private static int intOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
            throw new IllegalArgumentException("model config field " + key + " must be an integer, got " + m.get(key));
        }
        return Math.toIntExact(n.longValue());
    }

    private static double doubleOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Number n)) {
            throw new IllegalArgumentException("model config field " + key + " must be a number, got " + m.get(key));
        }
        return n.doubleValue();
    }

    private static boolean boolOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Boolean b)) {
            throw new IllegalArgumentException("model config field " + key + " must be true or false, got " + m.get(key));
        }
        return b;
    }
}
