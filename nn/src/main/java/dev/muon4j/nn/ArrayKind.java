package dev.muon4j.nn;

import java.util.List;

/**
 * The arrays of a {@link DecoderModel} and of one forward and backward pass over a micro-batch of B
 * sequences of the full context whose length can reach Java's array limit: for each kind, the
 * length of its largest single array as a product of dimensions ({@link LlamaConfig#arrayLength}).
 * Every other array is never longer than one of these: the norm gains (C), the key/value
 * projections ((K·D, C), K·D ≤ C) and their activations ((B·T, K·D)), the RoPE tables
 * (T·D/2 ≤ B·T·C) and the per-row statistics (B·T).
 */
public enum ArrayKind {
    /** The embedding table and the untied output head, (V, C). */
    EMBEDDING("the token embeddings", Dimension.VOCABULARY, Dimension.WIDTH),
    /** The query and output projections, (H·D, C) and (C, H·D) with H·D = C. */
    ATTENTION_PROJECTION("the attention projections", Dimension.WIDTH, Dimension.WIDTH),
    /** The SwiGLU projections, (F, C) and (C, F). */
    MLP_PROJECTION("the MLP projections", Dimension.MLP_WIDTH, Dimension.WIDTH),
    /** The input and target token ids of a micro-batch, B·T ints each. */
    TOKENS("the token ids of a micro-batch", Dimension.BATCH, Dimension.CONTEXT),
    /** The residual stream, the norms' outputs, the queries and the attention output, (B·T, C). */
    RESIDUAL("the residual-stream activations", Dimension.BATCH, Dimension.CONTEXT, Dimension.WIDTH),
    /** The SwiGLU gate, up and hidden activations, (B·T, F). */
    MLP_ACTIVATIONS("the MLP activations", Dimension.BATCH, Dimension.CONTEXT, Dimension.MLP_WIDTH),
    /** The attention probabilities and their gradient, (B, H, T, T) per layer. */
    ATTENTION_SCORES("the attention scores", Dimension.BATCH, Dimension.HEADS, Dimension.CONTEXT, Dimension.CONTEXT),
    /** The logits and the softmax probabilities of the loss, (B·T, V). */
    LOGITS("the logits", Dimension.BATCH, Dimension.CONTEXT, Dimension.VOCABULARY);

    /** A dimension that array lengths are products of. */
    public enum Dimension {
        /** B, sequences per micro-batch. */
        BATCH("batch"),
        /** T, the context length. */
        CONTEXT("context"),
        /** C, the residual width. */
        WIDTH("width"),
        /** F, the SwiGLU hidden width. */
        MLP_WIDTH("mlp width"),
        /** H, the query heads. */
        HEADS("heads"),
        /** V, the vocabulary size. */
        VOCABULARY("vocabulary");

        private final String label;

        Dimension(String label) {
            this.label = label;
        }

        /** The dimension in words, as formulas print it: "batch", "mlp width", ... */
        public String label() {
            return label;
        }
    }

    private final String description;
    private final List<Dimension> factors;

    ArrayKind(String description, Dimension... factors) {
        this.description = description;
        this.factors = List.of(factors);
    }

    /** The arrays in words: "the attention scores", ... */
    public String description() {
        return description;
    }

    /** The dimensions whose product is the length, a dimension once per power (context twice for the scores). */
    public List<Dimension> factors() {
        return factors;
    }

    /** How often {@code d} is a factor of the length: 0 when the length does not depend on it. */
    public int power(Dimension d) {
        return (int) factors.stream().filter(f -> f == d).count();
    }

    /** Whether the length depends on the batch: an activation rather than a parameter. */
    public boolean perBatch() {
        return power(Dimension.BATCH) > 0;
    }

    /** The formula in words: "batch × heads × context²". */
    public String formula() {
        StringBuilder s = new StringBuilder();
        for (Dimension d : factors.stream().distinct().toList()) {
            int p = power(d);
            s.append(s.isEmpty() ? "" : " × ").append(d.label()).append(p == 1 ? "" : p == 2 ? "²" : "^" + p);
        }
        return s.toString();
    }
}
