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
     * The training data.
     *
     * @param fingerprint identifies the tokens (a resumed run must see the same)
     * @param description a few words for people
     */
    record Data(String fingerprint, String description) {
    }
}
