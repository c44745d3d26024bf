package dev.muon4j.train;

import java.util.Map;
import java.util.Objects;

/**
 * A checkpoint's {@code config.json}: what a resumed run must match.
 *
 * @param model     the model's configuration ({@link dev.muon4j.nn.ModelConfig#toMap()})
 * @param train     the training settings, written under {@link TrainConfig#toMap()}'s names
 * @param tokenizer the tokenizer's name
 * @param data      the training data
 */
record CheckpointConfig(Map<String, Object> model, TrainConfig train, String tokenizer, Data data) {
    CheckpointConfig {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(train, "train");
        Objects.requireNonNull(tokenizer, "tokenizer");
        Objects.requireNonNull(data, "data");
    }

    /**
     * The training data, and where its text was read, so that {@code eval} can read it again.
     *
     * @param fingerprint        identifies the tokens (a resumed run must see the same)
     * @param description        a few words for people
     * @param validationFraction the share of the corpus held out for validation
     * @param shippedCorpus      whether the text is the corpus that ships with muon4j
     * @param corpusPaths        the files or directories the text was read from; null (not written) for none
     */
    record Data(String fingerprint, String description,
                @com.fasterxml.jackson.annotation.JsonProperty("validation_fraction") double validationFraction,
                @com.fasterxml.jackson.annotation.JsonProperty("shipped_corpus") boolean shippedCorpus,
                @com.fasterxml.jackson.annotation.JsonProperty("corpus_paths")
                @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                java.util.List<String> corpusPaths) {
    }
}
