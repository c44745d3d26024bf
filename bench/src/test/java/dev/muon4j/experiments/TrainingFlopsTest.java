package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.muon4j.nn.LlamaConfig;
import org.junit.jupiter.api.Test;

/** Training FLOPs counted by hand for small configs, against {@link TrainingFlops}. */
class TrainingFlopsTest {
    @Test
    void countsOneConfigByHand() {
        // V 256, C 64, 2 layers, 2 heads of D 32 (2 key/value heads), SwiGLU F 192, T 64, untied head.
        LlamaConfig c = new LlamaConfig(256, 64, 2, 2, 2, 192, 64, false, 10000, 1e-5, 0.02);
        // Per layer: q, k, v, o: 4 × 64·64 = 16,384; gate, up, down: 3 × 64·192 = 36,864; 53,248.
        // Two layers 106,496; the head 256·64 = 16,384: N = 122,880.
        assertEquals(122_880, TrainingFlops.matmulParameters(c));
        // Attention: 6 · L 2 · H 2 · D 32 · (T + 1) 65 = 49,920 per token.
        assertEquals(49_920, TrainingFlops.attentionPerToken(c));
        // 6·N = 737,280; plus attention 787,200 per token; 1,000 tokens: 787,200,000.
        assertEquals(787_200, TrainingFlops.perToken(c));
        assertEquals(787_200_000.0, TrainingFlops.training(c, 1000));
    }

    @Test
    void groupedKeysAndATiedHeadCountWhatTheyMultiply() {
        // C 48, 3 layers, 4 heads of D 12 over 2 key/value heads, F 128, T 32, V 100, tied head.
        LlamaConfig c = new LlamaConfig(100, 48, 3, 4, 2, 128, 32, true, 10000, 1e-5, 0.02);
        // q and o: 2 × 48·48 = 4,608; k and v: 2 × (2·12)·48 = 2,304; MLP: 3 × 48·128 = 18,432; per layer 25,344.
        // Three layers 76,032; the tied head still multiplies 100·48 = 4,800: N = 80,832.
        assertEquals(80_832, TrainingFlops.matmulParameters(c));
        // Queries score all 4 heads: 6 · 3 · 4 · 12 · 33 = 28,512.
        assertEquals(28_512, TrainingFlops.attentionPerToken(c));
        assertEquals(6 * 80_832 + 28_512, TrainingFlops.perToken(c));
    }

    @Test
    void negativeTokensAreRefused() {
        LlamaConfig c = new LlamaConfig(256, 64, 2, 2, 2, 192, 64, false, 10000, 1e-5, 0.02);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainingFlops.training(c, -1));
        assertEquals("training tokens must be >= 0, got -1", e.getMessage());
    }
}
