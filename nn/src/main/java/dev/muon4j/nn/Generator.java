package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import java.util.Arrays;
import java.util.Objects;
import java.util.function.IntConsumer;

/**
 * Autoregressive generation from a {@link LanguageModel}: each new token is drawn by a {@link Sampler}
 * from the logits of the last position, appended, and handed on at once.
 *
 * <p>There is no key/value cache: every token costs one full forward pass over the sequence so far,
 * cropped to its last {@link LanguageModel#contextLength()} tokens once it is longer (as nanoGPT's
 * {@code sample.py} does), so a token late in a long generation costs a pass over T tokens. That keeps
 * one code path for every attention and feed-forward the model may have (grouped-query and latent
 * attention, dense and Mixture-of-Experts layers) and gives exactly the logits training computes.
 * The model's positions restart at 0 at the start of the cropped window.
 *
 * <p>Nothing is recorded for backward. A forward pass still updates what the model counts (the
 * largest attention logits, the experts' loads). Not thread-safe; close it to release its buffers.
 */
public final class Generator implements AutoCloseable {
    private final LanguageModel model;
    private final int vocab;
    private final Graph graph;

    /**
     * A generator over {@code model}, computing on {@code backend}.
     *
     * @param vocab the model's vocabulary size V (the width of its logits)
     */
    public Generator(Backend backend, LanguageModel model, int vocab) {
        this.model = Objects.requireNonNull(model, "model");
        if (vocab < 1) {
            throw new IllegalArgumentException("vocabulary size must be >= 1, got " + vocab);
        }
        this.vocab = vocab;
        this.graph = new Graph(backend);
        graph.setRecording(false);
    }

    /**
     * The logits of the token after {@code tokens[0 .. length)}, from a forward pass over its last
     * {@code min(length, T)} tokens.
     *
     * @return V logits (a new array)
     * @throws IllegalArgumentException if {@code length} is below 1 or a token lies outside the vocabulary
     */
    public float[] nextLogits(int[] tokens, int length) {
        if (length < 1 || length > tokens.length) {
            throw new IllegalArgumentException("need at least one token of context, got " + length + " (of " + tokens.length + ")");
        }
        int time = Math.min(length, model.contextLength());
        int[] window = Arrays.copyOfRange(tokens, length - time, length);
        for (int t : window) {
            if (t < 0 || t >= vocab) {
                throw new IllegalArgumentException("token id " + t + " is outside the model's vocabulary [0, " + vocab + ")");
            }
        }
        try {
            Tensor logits = model.forward(graph, window, 1, time);                      // (T, V)
            return Arrays.copyOfRange(logits.data(), (time - 1) * vocab, time * vocab);  // the last position's row
        } finally {
            graph.reset();
        }
    }

    /**
     * Generates {@code count} tokens after {@code prompt}.
     *
     * @param prompt  the tokens to continue: at least one, at most the context length T
     * @param count   how many tokens to generate, ≥ 0
     * @param sampler draws each token
     * @param onToken receives each generated token as soon as it is drawn
     * @return the generated tokens (without the prompt)
     * @throws IllegalArgumentException for an empty prompt, one longer than T, or a token outside the vocabulary
     */
    public int[] generate(int[] prompt, int count, Sampler sampler, IntConsumer onToken) {
        if (prompt.length < 1) {
            throw new IllegalArgumentException("the prompt must hold at least one token");
        }
        if (prompt.length > model.contextLength()) {
            throw new IllegalArgumentException("the prompt is " + prompt.length + " tokens, longer than the model's context of "
                    + model.contextLength());
        }
        if (count < 0) {
            throw new IllegalArgumentException("the number of tokens to generate must be >= 0, got " + count);
        }
        int[] tokens = Arrays.copyOf(prompt, prompt.length + count);
        for (int n = prompt.length; n < tokens.length; n++) {
            float[] logits = nextLogits(tokens, n);
            tokens[n] = sampler.next(logits, 0, vocab);
            onToken.accept(tokens[n]);
        }
        return Arrays.copyOfRange(tokens, prompt.length, tokens.length);
    }

    @Override
    public void close() {
        graph.close();
    }
}
