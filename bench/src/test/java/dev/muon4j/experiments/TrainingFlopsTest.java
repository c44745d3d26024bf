package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;
import org.junit.jupiter.api.Test;

/** Training FLOPs counted by hand for small configs, dense and Mixture-of-Experts, against {@link TrainingFlops}. */
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
    void aMixtureOfExpertsModelCountsItsActiveParameters() {
        // The trunk: V 256, C 32, 3 layers, 2 heads of D 16 (2 key/value heads), dense SwiGLU F 96, T 64, untied head.
        // The first layer dense; then 8 routed experts of W 24 (F/4), 2 of them active, and 2 shared ones.
        LlamaConfig trunk = new LlamaConfig(256, 32, 3, 2, 2, 96, 64, false, 10000, 1e-5, 0.02);
        DeepSeekConfig c = new DeepSeekConfig(trunk, new MoeConfig(8, 2, 24, 2, 2.446, 1));
        // Attention, every layer: q, k, v, o: 4 × 32·32 = 4,096; three layers 12,288.
        // The dense first layer: gate, up, down: 3 × 32·96 = 9,216.
        // Each of the 2 MoE layers: the router 32·8 = 256, and (2 active + 2 shared) experts × 3 × 32·24 = 4 × 2,304 = 9,216;
        // 9,472 a layer, 18,944 for both. The 6 idle routed experts (6 × 2,304 = 13,824 a layer) are not counted.
        // The head 256·32 = 8,192: N = 12,288 + 9,216 + 18,944 + 8,192 = 48,640.
        assertEquals(48_640, TrainingFlops.matmulParameters(c));
        // The 4 experts a token passes through make the dense width F: N is the dense trunk's plus the two routers' 2 × 256.
        assertEquals(TrainingFlops.matmulParameters(trunk) + 512, TrainingFlops.matmulParameters(c));
        // Attention as the dense model's: 6 · L 3 · H 2 · D 16 · (T + 1) 65 = 37,440 per token.
        assertEquals(37_440, TrainingFlops.attentionPerToken(c));
        // 6·N = 291,840; plus attention 329,280 per token; 1,000 tokens: 329,280,000.
        assertEquals(329_280, TrainingFlops.perToken(c));
        assertEquals(329_280_000.0, TrainingFlops.training(c, 1000));
    }

    @Test
    void latentAttentionCountsItsProjectionsAndHeadColumns() {
        // The trunk: V 256, C 32, 2 layers, 2 heads, F 64, T 16; 4 routed experts of W 16, 2 active, 1 shared, the first
        // layer dense; latent attention without a query rank: R_kv 8, Dn 8, Dr 4, Dv 16.
        DeepSeekConfig c = new DeepSeekConfig(new LlamaConfig(256, 32, 2, 2, 2, 64, 16, false, 10000, 1e-5, 0.02),
                new MoeConfig(4, 2, 16, 1, 2.446, 1), new MlaConfig(0, 8, 8, 4, 16));
        // Attention, every layer: q 2·(8 + 4)·32 = 768; kv_a (8 + 4)·32 = 384; kv_b 2·(8 + 16)·8 = 384; o 32·2·16 = 1,024;
        // 2,560 a layer, 5,120 for both. Dense first layer 3 × 32·64 = 6,144. The MoE layer: router 32·4 = 128 and
        // (2 + 1) experts × 3 × 32·16 = 4,608; 4,736. The head 256·32 = 8,192: N = 5,120 + 6,144 + 4,736 + 8,192 = 24,192.
        assertEquals(24_192, TrainingFlops.matmulParameters(c));
        // A head scores with Dn + Dr = 12 columns and sums Dv = 16: 3 · L 2 · H 2 · 28 · (T + 1) 17 = 5,712 per token.
        assertEquals(5_712, TrainingFlops.attentionPerToken(c));
        assertEquals(6 * 24_192 + 5_712, TrainingFlops.perToken(c));
    }

    @Test
    void negativeTokensAreRefused() {
        LlamaConfig c = new LlamaConfig(256, 64, 2, 2, 2, 192, 64, false, 10000, 1e-5, 0.02);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainingFlops.training(c, -1));
        assertEquals("training tokens must be >= 0, got -1", e.getMessage());
    }
}
