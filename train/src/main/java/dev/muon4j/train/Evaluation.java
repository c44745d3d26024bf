package dev.muon4j.train;

import dev.muon4j.autograd.Graph;
import dev.muon4j.backend.Backend;
import dev.muon4j.data.Batch;
import dev.muon4j.data.Tokenizer;
import dev.muon4j.nn.LanguageModel;
import java.util.Arrays;
import java.util.List;

/**
 * A model's next-token loss over a list of batches, as the trainer validates ({@link Trainer#evaluate}),
 * with the measures derived from it.
 *
 * @param loss   the mean cross-entropy per predicted token, in nats (each batch's mean weighted by its rows,
 *               every row being one context of tokens)
 * @param tokens the tokens predicted
 * @param bytes  the bytes of text those tokens stand for ({@link Tokenizer#decodeBytes}); equal to
 *               {@code tokens} for the byte tokenizer
 */
public record Evaluation(double loss, long tokens, long bytes) {
    public Evaluation {
        if (tokens < 1 || bytes < 1) {
            throw new IllegalArgumentException("an evaluation needs tokens and bytes, got " + tokens + " and " + bytes);
        }
    }

    /** exp(loss): the model is as unsure as a uniform choice among this many tokens. */
    public double perplexity() {
        return Math.exp(loss);
    }

    /** The loss over the text's bytes in bits: loss · tokens / (ln 2 · bytes); loss / ln 2 for the byte tokenizer. */
    public double bitsPerByte() {
        return loss * tokens / (Math.log(2) * bytes);
    }

    /**
     * Evaluates {@code model} on {@code batches}, with nothing recorded for backward.
     *
     * @param tokenizer the tokenizer that produced the batches' ids, to count their bytes
     */
    public static Evaluation of(Backend backend, LanguageModel model, List<Batch> batches, Tokenizer tokenizer) {
        if (batches.isEmpty()) {
            throw new IllegalArgumentException("no batches to evaluate");
        }
        double loss;
        try (Graph g = new Graph(backend)) {
            loss = Trainer.evaluate(g, model, batches);
        }
        int[] bytesOf = new int[tokenizer.vocabSize()];
        Arrays.fill(bytesOf, -1);
        int[] one = new int[1];
        long tokens = 0;
        long bytes = 0;
        for (Batch b : batches) {
            tokens += b.tokens();
            for (int t : b.targets()) {
                if (bytesOf[t] < 0) {
                    one[0] = t;
                    bytesOf[t] = tokenizer.decodeBytes(one).length;
                }
                bytes += bytesOf[t];
            }
        }
        return new Evaluation(loss, tokens, bytes);
    }
}
