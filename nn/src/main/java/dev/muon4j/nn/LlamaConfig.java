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
                          int contextLength, boolean tiedHead, double ropeTheta, double normEps, double initStd)
        implements ModelConfig {

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

    @Override
    public LlamaConfig trunk() {
        return this;
    }

    @Override
    public FeedForward feedForward(int layer, String prefix) {
        return new SwiGlu(prefix, width, mlpWidth);
    }

    @Override
    public String describe() {
        return String.format(java.util.Locale.ROOT, "%,d parameters: %d layers, width %d, %d heads (%d key/value), SwiGLU %d, "
                + "context %d, vocabulary %d%s", parameterCount(), layers, width, heads, kvHeads, mlpWidth, contextLength, vocabSize,
                tiedHead ? ", tied head" : "");
    }

    @Override
    public java.util.List<java.util.Map.Entry<String, String>> summary() {
        java.util.Locale r = java.util.Locale.ROOT;
        return java.util.List.of(
                java.util.Map.entry("kind", "dense Llama (decoder-only transformer)"),
                java.util.Map.entry("parameters", String.format(r, "%,d", parameterCount())),
                java.util.Map.entry("layers", String.format(r, "%d, width %d", layers, width)),
                java.util.Map.entry("attention", String.format(r, "%d heads of %d (%d key/value)", heads, headDim(), kvHeads)),
                java.util.Map.entry("feed-forward", String.format(r, "SwiGLU %d", mlpWidth)),
                java.util.Map.entry("context", String.format(r, "%d tokens, vocabulary %d%s", contextLength, vocabSize,
                        tiedHead ? ", tied head" : "")));
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

    /** Number of parameters of a model with this config (saturating at {@link Long#MAX_VALUE}). */
    public long parameterCount() {
        long embeddings = product(tiedHead ? 1 : 2, vocabSize, width);
        long norms = product(2L * layers + 1, width);
        return sum(embeddings, norms, hiddenMatrixParameterCount());
    }

    /**
     * Number of parameters in the hidden matrices, the attention projections (q, k, v, o) and the
     * SwiGLU projections (gate, up, down) of every layer: the matrices Muon updates (saturating).
     */
    public long hiddenMatrixParameterCount() {
        long attention = product(2L * heads + 2L * kvHeads, headDim(), width);
        long mlp = product(3, mlpWidth, width);
        return product(layers, sum(attention, mlp));
    }

    /** Elements of the largest hidden matrix: width² (q and o projections) or mlp width × width. */
    public long largestHiddenMatrix() {
        return Math.max((long) width * width, (long) mlpWidth * width);
    }

    /**
     * The size of {@code d} for micro-batches of {@code batch} sequences.
     *
     * @param d     the dimension
     * @param batch B, sequences per micro-batch (the value of {@link ArrayKind.Dimension#BATCH})
     * @return the dimension's size
     */
    public long dimension(ArrayKind.Dimension d, int batch) {
        return switch (d) {
            case BATCH -> batch;
            case CONTEXT -> contextLength;
            case WIDTH -> width;
            case MLP_WIDTH -> mlpWidth;
            case HEADS -> heads;
            case VOCABULARY -> vocabSize;
        };
    }

    /**
     * The length of the largest single array of {@code kind} that a model with this config, and a
     * forward and backward pass over {@code batch} sequences of the full context, allocate: the
     * product of the kind's dimensions, saturating at {@link Long#MAX_VALUE}.
     *
     * @param kind  the kind of array
     * @param batch B, sequences per micro-batch, at least 1
     * @return the length in elements
     */
    public long arrayLength(ArrayKind kind, int batch) {
        positive("batch", batch);
        long n = 1;
        for (ArrayKind.Dimension d : kind.factors()) {
            n = product(n, dimension(d, batch));
        }
        return n;
    }

    /**
     * The kind with the longest array at this batch (the first in declaration order on a tie).
     *
     * @param batch B, sequences per micro-batch, at least 1
     * @return the kind; {@link #arrayLength} gives its length
     */
    public ArrayKind largestArray(int batch) {
        ArrayKind largest = ArrayKind.values()[0];
        for (ArrayKind k : ArrayKind.values()) {
            if (arrayLength(k, batch) > arrayLength(largest, batch)) {
                largest = k;
            }
        }
        return largest;
    }

    /**
     * The largest size of {@code d} for which the arrays of {@code kind} hold at most
     * {@code maxLength} elements, every other dimension as in this config: the floor of
     * (maxLength / the other factors)^(1/power). {@link Long#MAX_VALUE} when the kind does not
     * depend on {@code d}; 0 when even size 1 is too long.
     *
     * @param kind      the kind of array
     * @param d         the dimension to vary
     * @param batch     B, sequences per micro-batch, at least 1
     * @param maxLength the most elements an array may have, at least 1
     * @return the largest size
     */
    public long largestFitting(ArrayKind kind, ArrayKind.Dimension d, int batch, long maxLength) {
        positive("batch", batch);
        if (maxLength < 1) {
            throw new IllegalArgumentException("maxLength must be >= 1, got " + maxLength);
        }
        int power = kind.power(d);
        if (power == 0) {
            return Long.MAX_VALUE;
        }
        long others = 1;
        for (ArrayKind.Dimension f : kind.factors()) {
            if (f != d) {
                others = product(others, dimension(f, batch));
            }
        }
        return floorRoot(maxLength / others, power);
    }

    /**
     * The most floats a graph's pool lends at once during one training forward and backward pass
     * of {@link DecoderModel#loss} over {@code batch} sequences of the full context (this equals
     * {@link dev.muon4j.autograd.Graph#peakFloats()} after one such pass, and the pool's arrays stay
     * allocated for the whole run). Every intermediate tensor and the operations' forward scratch
     * stay until {@link dev.muon4j.autograd.Graph#reset()}; a gradient lives only from the step of
     * its first reader to the step of the operation that made it, and attention's dP only during its
     * step, so backward adds the largest set of gradients alive at one step, not one per tensor.
     * With N = B·T, L layers and K·D the key/value width:
     * <pre>
     * outputs  = N·C·(9L + 2) + 3L·N·K·D + 3L·N·F + N·V + 1    (embedding, 9 (N, C) tensors per layer, final norm;
     *                                                           k, k rotated, v; gate, up, SwiGLU; logits; loss)
     * scratch  = N·(2L + 1) + L·B·H·T² + L·B·H·T + L·N·F + N·V  (RMSNorm's inverse RMS, attention probabilities
     *                                                           and their rows' largest logits, SwiGLU's σ(gate),
     *                                                           the loss's softmax)
     * backward = max(N·(C + V),                                 (the head: logits and final norm)
     *                N·(C + 3F), N·(2C + 2F),                   (SwiGLU's step, the up projection's)
     *                N·(3C + 2K·D) + B·H·T²,                    (attention's step: dP, the block's input and output,
     *                                                           the queries, keys and values)
     *                N·4C)                                      (the queries' RoPE: block input, norm, q, q rotated)
     * total    = outputs + scratch + backward
     * </pre>
     * Saturates at {@link Long#MAX_VALUE}.
     *
     * @param batch B, sequences per micro-batch, at least 1
     * @return the floats held at the peak
     */
    public long trainingStepFloats(int batch) {
        positive("batch", batch);
        long rows = product(batch, contextLength);
        long scores = product(batch, heads, contextLength, contextLength);
        long kv = (long) kvHeads * headDim();
        long outputs = sum(product(rows, width, 9L * layers + 2), product(3L * layers, rows, kv),
                product(3L * layers, rows, mlpWidth), product(rows, vocabSize), 1);
        long rowMaxima = product(layers, batch, heads, contextLength);
        long scratch = sum(product(rows, 2L * layers + 1), product(layers, scores), rowMaxima, product(layers, rows, mlpWidth),
                product(rows, vocabSize));
        long perRow = java.util.stream.LongStream.of(sum(width, vocabSize), sum(width, product(3, mlpWidth)),
                sum(product(2, width), product(2, mlpWidth)), product(4, width)).max().orElseThrow();
        long attention = sum(product(rows, sum(product(3, width), product(2, kv))), scores);
        return sum(outputs, scratch, Math.max(product(rows, perRow), attention));
    }

    /** Field name → value, for JSON. */
    @Override
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

    static int intOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
            throw new IllegalArgumentException("model config field " + key + " must be an integer, got " + m.get(key));
        }
        return Math.toIntExact(n.longValue());
    }

    static double doubleOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Number n)) {
            throw new IllegalArgumentException("model config field " + key + " must be a number, got " + m.get(key));
        }
        return n.doubleValue();
    }

    static boolean boolOf(Map<String, ?> m, String key) {
        if (!(field(m, key) instanceof Boolean b)) {
            throw new IllegalArgumentException("model config field " + key + " must be true or false, got " + m.get(key));
        }
        return b;
    }

    /** The product of non-negative factors, or {@link Long#MAX_VALUE} when it does not fit a long. */
    static long product(long... factors) {
        long p = 1;
        for (long f : factors) {
            if (f != 0 && p > Long.MAX_VALUE / f) {
                return Long.MAX_VALUE;
            }
            p *= f;
        }
        return p;
    }

    /** The sum of non-negative terms, or {@link Long#MAX_VALUE} when it does not fit a long. */
    static long sum(long... terms) {
        long s = 0;
        for (long t : terms) {
            s = t > Long.MAX_VALUE - s ? Long.MAX_VALUE : s + t;
        }
        return s;
    }

    /** The largest r with r^power ≤ x, for x ≥ 0 and power ≥ 1. */
    private static long floorRoot(long x, int power) {
        if (power == 1 || x <= 1) {
            return x;
        }
        long r = (long) Math.floor(Math.pow(x, 1.0 / power));
        while (r > 0 && toThe(r, power) > x) {
            r--;
        }
        while (toThe(r + 1, power) <= x) {
            r++;
        }
        return r;
    }

    /** r^power, saturating. */
    private static long toThe(long r, int power) {
        long p = 1;
        for (int i = 0; i < power; i++) {
            p = product(p, r);
        }
        return p;
    }
}
