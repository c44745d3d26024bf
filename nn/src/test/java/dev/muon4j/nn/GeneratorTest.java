package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Generation against the model's own forward pass: each token is the one the sampler draws from the
 * last row of a full forward over the (cropped) sequence, for the dense and the Mixture-of-Experts model.
 */
class GeneratorTest {
    static final LlamaConfig DENSE = new LlamaConfig(32, 16, 2, 4, 2, 24, 8, false, 10000, 1e-5, 0.5);
    static final DeepSeekConfig MOE = new DeepSeekConfig(DENSE, new MoeConfig(6, 2, 12, 1, 2.446, 1), new MlaConfig(0, 8, 4, 2, 4));

    private Backend backend;

    @BeforeEach
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterEach
    void close() {
        backend.close();
    }

    private static LanguageModel model(ModelConfig config) {
        LanguageModel model = config.create();
        model.initialize(5);   // init std 0.5: logits far enough apart that sampling is not near-uniform
        return model;
    }

    /** The last row of a forward pass over {@code tokens}, computed directly. */
    private float[] lastRow(LanguageModel model, int[] tokens) {
        try (Graph g = new Graph(backend)) {
            g.setRecording(false);
            Tensor logits = model.forward(g, tokens, 1, tokens.length);
            return Arrays.copyOfRange(logits.data(), (tokens.length - 1) * 32, tokens.length * 32);
        }
    }

    @Test
    void greedyGenerationPicksTheArgmaxOfTheCroppedWindowAtEveryStep() {
        for (ModelConfig config : List.of(DENSE, MOE)) {
            LanguageModel model = model(config);
            int[] prompt = {3, 1, 4};
            List<Integer> streamed = new ArrayList<>();
            int[] out;
            try (Generator generator = new Generator(backend, model, 32)) {
                out = generator.generate(prompt, 12, new Sampler(SamplingConfig.greedy(), 0), streamed::add);
            }
            assertEquals(12, out.length);
            assertEquals(Arrays.stream(out).boxed().toList(), streamed, "each token handed on as it is drawn, in order");
            int[] sequence = new int[prompt.length + out.length];
            System.arraycopy(prompt, 0, sequence, 0, prompt.length);
            System.arraycopy(out, 0, sequence, prompt.length, out.length);
            for (int n = prompt.length; n < sequence.length; n++) {
                // the window: the last T = 8 tokens before position n (3 + 12 = 15 > 8, so later steps crop)
                int[] window = Arrays.copyOfRange(sequence, Math.max(0, n - 8), n);
                float[] row = lastRow(model, window);
                assertEquals(Sampler.argmax(row, 0, 32), sequence[n], config.family() + " token " + n);
            }
        }
    }

    @Test
    void sampledGenerationIsTheSamplersDrawFromEachRowAndRepeatsWithItsSeed() {
        LanguageModel model = model(MOE);
        SamplingConfig config = new SamplingConfig(1.0, 10, 0.95);
        int[] prompt = {7};
        int[] a;
        int[] b;
        int[] c;
        try (Generator generator = new Generator(backend, model, 32)) {
            a = generator.generate(prompt, 20, new Sampler(config, 99), t -> { });
            b = generator.generate(prompt, 20, new Sampler(config, 99), t -> { });
            c = generator.generate(prompt, 20, new Sampler(config, 100), t -> { });
        }
        assertArrayEquals(a, b, "same seed, same tokens");
        assertTrue(!Arrays.equals(a, c), "another seed draws other tokens: " + Arrays.toString(a) + " " + Arrays.toString(c));
        // replay: the sampler's draws from rows computed directly give the same tokens
        Sampler replay = new Sampler(config, 99);
        int[] sequence = new int[21];
        sequence[0] = 7;
        System.arraycopy(a, 0, sequence, 1, 20);
        for (int n = 1; n < 21; n++) {
            float[] row = lastRow(model, Arrays.copyOfRange(sequence, Math.max(0, n - 8), n));
            assertEquals(replay.next(row, 0, 32), sequence[n], "token " + n);
        }
    }

    @Test
    void promptsTheModelCannotTakeAreRefused() {
        LanguageModel model = model(DENSE);
        try (Generator generator = new Generator(backend, model, 32)) {
            Sampler greedy = new Sampler(SamplingConfig.greedy(), 0);
            var e = assertThrows(IllegalArgumentException.class, () -> generator.generate(new int[9], 1, greedy, t -> { }));
            assertTrue(e.getMessage().contains("9 tokens") && e.getMessage().contains("context of 8"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> generator.generate(new int[0], 1, greedy, t -> { }));
            assertTrue(e.getMessage().contains("at least one token"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> generator.generate(new int[] {1, 32}, 1, greedy, t -> { }));
            assertTrue(e.getMessage().contains("token id 32") && e.getMessage().contains("[0, 32)"), e.getMessage());
            assertEquals(0, generator.generate(new int[8], 0, greedy, t -> { }).length, "a full-context prompt and no tokens");
        }
    }
}
