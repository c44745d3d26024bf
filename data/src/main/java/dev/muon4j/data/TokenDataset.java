package dev.muon4j.data;

import java.util.Arrays;
import java.util.List;

/**
 * A corpus turned into token ids and split in two: the training tokens first, the validation
 * tokens (the last fraction of the stream, default 5%) after them. The split falls between two
 * tokens, so no token is cut; windows never cross it because each split is sampled on its own.
 */
public final class TokenDataset {

    /** The default share of tokens held out for validation, taken from the end. */
    public static final double DEFAULT_VALIDATION_FRACTION = 0.05;

    private final String tokenizerName;
    private final int vocabSize;
    private final int[] train;
    private final int[] validation;
    private final double validationFraction;
    private final Corpus.Origin origin;
    private String fingerprint;

    /**
     * Splits an already tokenized stream.
     *
     * @param tokens all token ids, in text order
     * @param tokenizer the tokenizer that produced them (for its name and vocabulary size)
     * @param validationFraction the share for validation, in {@code (0, 1)}
     * @param contextLength {@code T}; each split must hold at least {@code T + 1} tokens
     * @throws IllegalArgumentException if the fraction is outside {@code (0, 1)}, {@code T < 1}, or a
     *     split is shorter than {@code T + 1} ("corpus of N tokens is too short for context T")
     */
    public TokenDataset(int[] tokens, Tokenizer tokenizer, double validationFraction, int contextLength) {
        this(tokens, tokenizer, validationFraction, contextLength, new Corpus.Origin(null, List.of()));
    }

    private TokenDataset(int[] tokens, Tokenizer tokenizer, double validationFraction, int contextLength, Corpus.Origin origin) {
        if (!(validationFraction > 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("validation fraction must lie in (0, 1), got " + validationFraction);
        }
        if (contextLength < 1) {
            throw new IllegalArgumentException("context length must be at least 1, got " + contextLength);
        }
        int n = tokens.length;
        int nVal = (int) Math.round(n * validationFraction);
        int nTrain = n - nVal;
        long need = contextLength + 1L;
        if (nTrain < need || nVal < need) {
            throw new IllegalArgumentException("corpus of " + n + " tokens is too short for context "
                    + contextLength + ": the training split has " + nTrain + " and the validation split ("
                    + validationFraction + ") " + nVal + " tokens; each needs at least " + need);
        }
        this.tokenizerName = tokenizer.name();
        this.vocabSize = tokenizer.vocabSize();
        this.train = Arrays.copyOfRange(tokens, 0, nTrain);
        this.validation = Arrays.copyOfRange(tokens, nTrain, n);
        this.validationFraction = validationFraction;
        this.origin = origin;
    }

    /**
     * Tokenizes a corpus and splits it, holding out the default 5% for validation.
     *
     * @param corpus the text
     * @param tokenizer the tokenizer
     * @param contextLength {@code T}
     * @return the dataset
     * @throws IllegalArgumentException if a split is too short for the context
     */
    public static TokenDataset of(Corpus corpus, Tokenizer tokenizer, int contextLength) {
        return of(corpus, tokenizer, DEFAULT_VALIDATION_FRACTION, contextLength);
    }

    /**
     * Tokenizes a corpus and splits it.
     *
     * @param corpus the text
     * @param tokenizer the tokenizer
     * @param validationFraction the share for validation, from the end, in {@code (0, 1)}
     * @param contextLength {@code T}
     * @return the dataset
     * @throws IllegalArgumentException if a split is too short for the context
     */
    public static TokenDataset of(Corpus corpus, Tokenizer tokenizer, double validationFraction, int contextLength) {
        return new TokenDataset(tokenizer.encode(corpus.text()), tokenizer, validationFraction, contextLength, corpus.origin());
    }

    /** The training tokens (shared, do not modify). */
    public int[] trainTokens() {
        return train;
    }

    /** The validation tokens (shared, do not modify). */
    public int[] validationTokens() {
        return validation;
    }

    /** The share of the tokens held out for validation, as given. */
    public double validationFraction() {
        return validationFraction;
    }

    /** Where the corpus was read ({@link #of}); memory for a dataset made from token ids. */
    public Corpus.Origin origin() {
        return origin;
    }

    /** The name of the tokenizer that produced the ids. */
    public String tokenizerName() {
        return tokenizerName;
    }

    /** The vocabulary size of that tokenizer. */
    public int vocabSize() {
        return vocabSize;
    }

    /**
     * A sampler over the training tokens.
     *
     * @param contextLength {@code T}
     * @param batchSize the global batch size {@code B}
     * @param seed the run's seed
     * @return the sampler
     */
    public BatchSampler trainSampler(int contextLength, int batchSize, long seed) {
        return new BatchSampler(train, contextLength, batchSize, seed);
    }

    /**
     * Fixed validation batches: consecutive non-overlapping windows from the start of the
     * validation tokens; see {@link BatchSampler#windows(int[], int, int, int)}.
     *
     * @param maxBatches the most batches to return
     * @param batchSize {@code B}
     * @param contextLength {@code T}
     * @return at least one batch, the same every call
     */
    public List<Batch> validationBatches(int maxBatches, int batchSize, int contextLength) {
        return BatchSampler.windows(validation, maxBatches, batchSize, contextLength);
    }

    /**
     * A fingerprint of the token streams: the first 16 hex digits of the SHA-256 of both splits'
     * lengths and ids. Two datasets with the same fingerprint train and validate on the same tokens,
     * so a checkpoint records it to notice a resumed run being given other data.
     */
    public synchronized String fingerprint() {
        if (fingerprint == null) {
            java.security.MessageDigest digest;
            try {
                digest = java.security.MessageDigest.getInstance("SHA-256");
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException("the JDK lacks SHA-256", e);
            }
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(1 << 16);
            for (int[] split : new int[][] {train, validation}) {
                for (int i = -1; i < split.length; i++) {
                    if (buf.remaining() < Integer.BYTES) {
                        digest.update(buf.flip());
                        buf.clear();
                    }
                    buf.putInt(i < 0 ? split.length : split[i]);
                }
            }
            digest.update(buf.flip());
            fingerprint = java.util.HexFormat.of().formatHex(digest.digest()).substring(0, 16);
        }
        return fingerprint;
    }

    /** One line for logs: tokenizer and split sizes. */
    public String describe() {
        return String.format("%s tokens: %,d train, %,d validation", tokenizerName, train.length, validation.length);
    }

    @Override
    public String toString() {
        return "TokenDataset[" + describe() + "]";
    }
}
