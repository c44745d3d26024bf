package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.Parameter;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The RMS of each block's output that a forward pass records when asked ({@link DecoderModel#layerOutputRms()}):
 * checked on a model whose blocks add nothing to the residual stream (every o_proj and down_proj zero),
 * so each block's output is the embedding of the tokens, whose RMS is computed here by hand; then on a
 * trained-looking model, where the blocks change the stream and the recording follows the passes.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LayerOutputRmsTest {
    static final LlamaConfig CONFIG = new LlamaConfig(64, 32, 3, 4, 2, 48, 12, false, 10000, 1e-5, 0.1);

    private Backend backend;

    @BeforeAll
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    void close() {
        backend.close();
    }

    private static int[] tokens(long seed, int n) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(CONFIG.vocabSize());
        }
        return t;
    }

    @Test
    void blocksThatAddNothingPassOnTheEmbeddingsRms() {
        DecoderModel model = new DecoderModel(CONFIG);
        model.initialize(3);
        for (Parameter p : model.parameters()) {
            if (p.name().endsWith("o_proj.weight") || p.name().endsWith("down_proj.weight")) {
                Arrays.fill(p.value(), 0f);
            }
        }
        int batch = 2;
        int[] t = tokens(5, batch * CONFIG.contextLength());
        float[] embed = model.parameters().getFirst().value();
        double squares = 0;
        for (int token : t) {
            for (int c = 0; c < CONFIG.width(); c++) {
                double v = embed[token * CONFIG.width() + c];
                squares += v * v;
            }
        }
        double expected = Math.sqrt(squares / (t.length * CONFIG.width()));
        assertEquals(0, model.layerOutputRms().length, "nothing recorded before asked");
        model.recordLayerOutputs(true);
        try (Graph g = new Graph(backend)) {
            model.forward(g, t, batch, CONFIG.contextLength());
            g.reset();
            double[] rms = model.layerOutputRms();
            assertEquals(CONFIG.layers(), rms.length);
            for (int l = 0; l < rms.length; l++) {
                assertEquals(expected, rms[l], 1e-6 * expected, "layer " + l);
            }
            // A second pass over other tokens counts in: the RMS over both passes' elements.
            int[] u = tokens(6, batch * CONFIG.contextLength());
            double more = 0;
            for (int token : u) {
                for (int c = 0; c < CONFIG.width(); c++) {
                    double v = embed[token * CONFIG.width() + c];
                    more += v * v;
                }
            }
            model.forward(g, u, batch, CONFIG.contextLength());
            g.reset();
            double both = Math.sqrt((squares + more) / (2.0 * t.length * CONFIG.width()));
            assertEquals(both, model.layerOutputRms()[1], 1e-6 * both);
        }
        model.recordLayerOutputs(false);
        assertEquals(0, model.layerOutputRms().length, "stopped: nothing to report, nothing recorded");
    }

    @Test
    void recordingRestartsClearedAndDoesNotChangeTheForwardPass() {
        DecoderModel model = new DecoderModel(CONFIG);
        model.initialize(3);
        int[] t = tokens(7, CONFIG.contextLength());
        try (Graph g = new Graph(backend)) {
            float[] plain = model.forward(g, t, 1, CONFIG.contextLength()).data().clone();
            g.reset();
            model.recordLayerOutputs(true);
            float[] recorded = model.forward(g, t, 1, CONFIG.contextLength()).data().clone();
            g.reset();
            assertArrayEquals(Arrays.copyOf(plain, CONFIG.contextLength() * CONFIG.vocabSize()),
                    Arrays.copyOf(recorded, CONFIG.contextLength() * CONFIG.vocabSize()), "logits with and without recording");
            double[] once = model.layerOutputRms();
            for (double v : once) {
                assertTrue(v > 0 && Double.isFinite(v), Arrays.toString(once));
            }
            assertTrue(once[0] != once[2], "the blocks change the stream: " + Arrays.toString(once));
            model.forward(g, t, 1, CONFIG.contextLength());
            g.reset();
            assertArrayEquals(once, model.layerOutputRms(), 1e-12, "the same pass twice: the same RMS");
            model.recordLayerOutputs(true);
            double[] cleared = model.layerOutputRms();
            for (double v : cleared) {
                assertTrue(Double.isNaN(v), "restarting clears: no pass yet, " + Arrays.toString(cleared));
            }
        }
    }

    @Test
    void aModelThatCannotRecordSaysSo() {
        LanguageModel other = new LanguageModel() {
            public java.util.List<Parameter> parameters() { return java.util.List.of(); }
            public int contextLength() { return 1; }
            public void initialize(long seed) { }
            public dev.muon4j.autograd.Tensor forward(Graph g, int[] tokens, int batch, int time) { return null; }
            public float[] maxLogits() { return new float[0]; }
            public void resetMaxLogits() { }
            public int qkClip(double tau, double[] maxLogits) { return 0; }
            public java.util.List<Attention.HeadRows> headRows() { return java.util.List.of(); }
        };
        other.recordLayerOutputs(false);
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> other.recordLayerOutputs(true));
        assertTrue(e.getMessage().contains("does not record its layers' outputs"), e.getMessage());
    }
}
