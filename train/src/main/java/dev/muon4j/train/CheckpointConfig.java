package dev.muon4j.train;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A checkpoint's {@code muon4j.json} (config.json before it held the model in Hugging Face's schema):
 * muon4j's own settings, what a resumed run must match.
 *
 * @param model       the model's configuration ({@link dev.muon4j.nn.ModelConfig#toMap()})
 * @param train       the training settings, written under {@link TrainConfig#toMap()}'s names
 * @param tokenizer   the tokenizer's name
 * @param data        the training data
 * @param huggingFace how config.json relates to muon4j's model; null in checkpoints before config.json held it
 * @param initFrom    where the run's initial weights came from; null when they were drawn from the seed
 */
record CheckpointConfig(Map<String, Object> model, TrainConfig train, String tokenizer, Data data,
                        @JsonProperty("hugging_face") @JsonInclude(JsonInclude.Include.NON_NULL) HuggingFace huggingFace,
                        @JsonProperty("init_from") @JsonInclude(JsonInclude.Include.NON_NULL) InitFrom initFrom) {
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
     * @param shippedCorpusName  which shipped corpus ({@link dev.muon4j.data.ShippedCorpus#id()}) when it is not the default
     *                           Gutenberg one; null (not written) for that one, which checkpoints written before there were
     *                           two shipped corpora mean by {@code shipped_corpus} alone, and for files
     */
    record Data(String fingerprint, String description,
                @com.fasterxml.jackson.annotation.JsonProperty("validation_fraction") double validationFraction,
                @com.fasterxml.jackson.annotation.JsonProperty("shipped_corpus") boolean shippedCorpus,
                @com.fasterxml.jackson.annotation.JsonProperty("corpus_paths")
                @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                java.util.List<String> corpusPaths,
                @JsonProperty("shipped_corpus_name") @JsonInclude(JsonInclude.Include.NON_NULL) String shippedCorpusName) {
    }

    /**
     * How the checkpoint's config.json describes the model to Hugging Face.
     *
     * @param architecture the class that loads it ({@code LlamaForCausalLM}, {@code DeepseekV3ForCausalLM}); null when none does
     * @param notes        where muon4j's model is a particular case of that class, or differs from it
     */
    record HuggingFace(String architecture, List<String> notes) {
    }

    /**
     * The directory a run's initial weights were read from ({@code train --init-from}).
     *
     * @param path the directory as given
     * @param kind what it was: {@code "checkpoint"} (with its step) or {@code "hugging_face"} (an exported or other
     *             Hugging Face model directory)
     * @param step the checkpoint's step; null for a Hugging Face directory
     */
    record InitFrom(String path, String kind, @JsonInclude(JsonInclude.Include.NON_NULL) Long step) {
    }
}
