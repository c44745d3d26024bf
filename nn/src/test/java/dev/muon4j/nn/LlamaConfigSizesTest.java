package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.nn.ArrayKind.Dimension;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The size arithmetic of {@link LlamaConfig} against hand-computed values and against what a real pass allocates. */
class LlamaConfigSizesTest {
    /** The longest Java array. */
    static final long LIMIT = Integer.MAX_VALUE;

    /** The command line's tiny preset: V 256, C 192, 4 layers, H = K = 4, F 512, T 128. */
    static final LlamaConfig TINY = new LlamaConfig(256, 192, 4, 4, 4, 512, 128, false, 10000, 1e-5, 0.02);

    @Test
    void arrayLengthsOfTheTinyModel() {
        assertEquals(256L * 192, TINY.arrayLength(ArrayKind.EMBEDDING, 16));
        assertEquals(192L * 192, TINY.arrayLength(ArrayKind.ATTENTION_PROJECTION, 16));
        assertEquals(512L * 192, TINY.arrayLength(ArrayKind.MLP_PROJECTION, 16));
        assertEquals(16L * 128, TINY.arrayLength(ArrayKind.TOKENS, 16));
        assertEquals(16L * 128 * 192, TINY.arrayLength(ArrayKind.RESIDUAL, 16));
        assertEquals(16L * 128 * 512, TINY.arrayLength(ArrayKind.MLP_ACTIVATIONS, 16));
        assertEquals(16L * 4 * 128 * 128, TINY.arrayLength(ArrayKind.ATTENTION_SCORES, 16));
        assertEquals(16L * 128 * 256, TINY.arrayLength(ArrayKind.LOGITS, 16));
        // 1,048,576 for both the MLP activations and the scores: the first declared wins the tie
        assertEquals(ArrayKind.MLP_ACTIVATIONS, TINY.largestArray(16));
        assertEquals(ArrayKind.ATTENTION_SCORES, TINY.withContextLength(256).largestArray(16));
    }

    @Test
    void lengthsThatOverflowAnIntAreExactAsLongs() {
        // --context 100000: 16 × 4 × 100000² scores
        assertEquals(640_000_000_000L, TINY.withContextLength(100_000).arrayLength(ArrayKind.ATTENTION_SCORES, 16));
        // --width 1000000: the q and o projections are 1000000²
        LlamaConfig wide = new LlamaConfig(256, 1_000_000, 4, 4, 4, 512, 128, false, 10000, 1e-5, 0.02);
        assertEquals(1_000_000_000_000L, wide.arrayLength(ArrayKind.ATTENTION_PROJECTION, 16));
        assertEquals(ArrayKind.ATTENTION_PROJECTION, wide.largestArray(16));
        // --batch 100000: 100000 × 128 × 512 MLP activations
        assertEquals(6_553_600_000L, TINY.arrayLength(ArrayKind.MLP_ACTIVATIONS, 100_000));
    }

    @Test
    void lengthsBeyondALongSaturate() {
        LlamaConfig huge = new LlamaConfig(256, 192, 4, 4, 4, 512, Integer.MAX_VALUE, false, 10000, 1e-5, 0.02);
        assertEquals(Long.MAX_VALUE, huge.arrayLength(ArrayKind.ATTENTION_SCORES, Integer.MAX_VALUE));
        assertEquals(Long.MAX_VALUE, huge.trainingStepFloats(Integer.MAX_VALUE));
        LlamaConfig deep = new LlamaConfig(256, 46340, Integer.MAX_VALUE, 10, 10, 46340, 128, false, 10000, 1e-5, 0.02);
        assertEquals(Long.MAX_VALUE, deep.parameterCount());
    }

    @Test
    void largestFittingSizes() {
        // 16 × 4 × T² ≤ 2,147,483,647  ⇔  T ≤ ⌊√33,554,431⌋ = 5792 (5792² = 33,547,264, 5793² = 33,558,849)
        assertEquals(5792, TINY.largestFitting(ArrayKind.ATTENTION_SCORES, Dimension.CONTEXT, 16, LIMIT));
        // 16 × T × 256 ≤ 2,147,483,647  ⇔  T ≤ 524,287
        assertEquals(524_287, TINY.largestFitting(ArrayKind.LOGITS, Dimension.CONTEXT, 16, LIMIT));
        // C² ≤ 2,147,483,647  ⇔  C ≤ 46,340
        assertEquals(46_340, TINY.largestFitting(ArrayKind.ATTENTION_PROJECTION, Dimension.WIDTH, 16, LIMIT));
        // B × 128 × 512 ≤ 2,147,483,647  ⇔  B ≤ 32,767
        assertEquals(32_767, TINY.largestFitting(ArrayKind.MLP_ACTIVATIONS, Dimension.BATCH, 16, LIMIT));
        assertEquals(Long.MAX_VALUE, TINY.largestFitting(ArrayKind.EMBEDDING, Dimension.BATCH, 16, LIMIT));
        // the other factors alone exceed the limit: nothing fits
        assertEquals(0, TINY.withContextLength(100_000_000).largestFitting(ArrayKind.LOGITS, Dimension.BATCH, 1, 1_000_000));
        // the fitted batch really fits, and one more does not
        for (ArrayKind kind : ArrayKind.values()) {
            long most = TINY.largestFitting(kind, Dimension.BATCH, 16, LIMIT);
            if (most < Integer.MAX_VALUE) {
                assertTrue(TINY.arrayLength(kind, (int) most) <= LIMIT, kind.name());
                assertTrue(TINY.arrayLength(kind, (int) most + 1) > LIMIT, kind.name());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> TINY.largestFitting(ArrayKind.LOGITS, Dimension.BATCH, 0, LIMIT));
    }

    @Test
    void parameterCounts() {
        // per layer: attention (2·4 + 2·4)·48·192 = 147,456, MLP 3·512·192 = 294,912
        assertEquals(4L * (147_456 + 294_912), TINY.hiddenMatrixParameterCount());
        // + embedding and head 2·256·192 = 98,304, norms 9·192 = 1,728
        assertEquals(1_869_504, TINY.parameterCount());
        assertEquals(512L * 192, TINY.largestHiddenMatrix());
        // standard small: 6·((12 + 12)·64·384 + 3·1024·384) + 2·256·384 + 13·384
        assertEquals(10_818_432, LlamaConfig.standardSmall().parameterCount());
    }

    @Test
    void trainingStepFloatsByHand() {
        // V 16, C 8, 1 layer, H 2, K 1 (K·D = 4), F 12, T 4, B 2: N = 8, scores B·H·T² = 64, row maxima B·H·T = 16
        LlamaConfig c = new LlamaConfig(16, 8, 1, 2, 1, 12, 4, false, 10000, 1e-5, 0.02);
        long outputs = 8 * 8 * 11 + 3 * 8 * 4 + 3 * 8 * 12 + 8 * 16 + 1;   // 1,217
        long scratch = 8 * 3 + 64 + 16 + 8 * 12 + 8 * 16;                  // 328
        // the largest set of gradients alive at one backward step: SwiGLU's, N·(C + 3F) = 8·44 = 352, against
        // attention's N·(3C + 2K·D) + B·H·T² = 8·32 + 64 = 320, the head's N·(C + V) = 192, the RoPE's N·4C = 256
        long backward = 352;
        assertEquals(outputs + scratch + backward, c.trainingStepFloats(2));
        assertEquals(1897, c.trainingStepFloats(2));
    }

    @Test
    void trainingStepFloatsIsWhatAForwardAndBackwardPassHolds() {
        LlamaConfig[] configs = {
                new LlamaConfig(16, 8, 1, 2, 1, 12, 4, false, 10000, 1e-5, 0.02),
                new LlamaConfig(40, 16, 2, 4, 2, 24, 6, true, 10000, 1e-5, 0.02),
                new LlamaConfig(32, 12, 3, 3, 3, 20, 5, false, 10000, 1e-5, 0.02)};
        for (LlamaConfig config : configs) {
            for (int batch : new int[] {1, 3}) {
                DecoderModel model = new DecoderModel(config);
                model.initialize(1);
                SplittableRandom random = new SplittableRandom(batch);
                int[] inputs = random.ints(batch * config.contextLength(), 0, config.vocabSize()).toArray();
                int[] targets = random.ints(batch * config.contextLength(), 0, config.vocabSize()).toArray();
                try (VectorBackend backend = new VectorBackend(1); Graph g = new Graph(backend)) {
                    Tensor loss = model.loss(g, inputs, targets, batch, config.contextLength());
                    g.backward(loss);
                    assertEquals(config.trainingStepFloats(batch), g.peakFloats(), config + ", batch " + batch);
                }
            }
        }
    }
}
