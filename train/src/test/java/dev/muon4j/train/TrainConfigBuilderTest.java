package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.NewtonSchulzConfig;
import org.junit.jupiter.api.Test;

/** {@link TrainConfig#toBuilder()}: a copy changes only what it is told to, and builds through the same checks. */
class TrainConfigBuilderTest {
    static final TrainConfig BASE = new TrainConfig(OptimizerChoice.MUON, 3e-3, 1.2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2,
            10, 0.1, 4, 1, 1.0, 7, 5, 2, 5, 3);

    @Test
    void aCopyChangesOnlyWhatItIsTold() {
        assertEquals(BASE, BASE.toBuilder().build());
        TrainConfig changed = BASE.toBuilder().routerBiasRate(0.01).nsMethod(NewtonSchulzConfig.Method.GRAM).build();
        assertEquals(0.01, changed.routerBiasRate());
        assertEquals(NewtonSchulzConfig.Method.GRAM, changed.nsMethod());
        assertEquals(BASE, changed.toBuilder().routerBiasRate(BASE.routerBiasRate()).nsMethod(BASE.nsMethod()).build());
        assertEquals(BASE.withQkClip(15), BASE.toBuilder().qkClipThreshold(15).build());
        TrainConfig shorter = BASE.withSteps(1);
        assertEquals(1, shorter.steps());
        assertEquals(1, shorter.warmupSteps(), "warm-up capped at the steps");
    }

    @Test
    void theBuilderChecksAsTheConstructorDoes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BASE.toBuilder().batchSize(0).build());
        assertTrue(e.getMessage().contains("batch size and accumulation must be >= 1, got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> BASE.toBuilder().muonVariant(MuonVariant.TORCH).nsMethod(NewtonSchulzConfig.Method.GRAM).build());
        assertTrue(e.getMessage().contains("Gram"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BASE.withRouterBiasRate(-0.5));
        assertTrue(e.getMessage().contains("router bias rate must be finite and >= 0, got -0.5"), e.getMessage());
    }
}
