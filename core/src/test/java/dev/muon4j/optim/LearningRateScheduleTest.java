package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** The learning-rate schedules' factors at each phase, computed by hand, and their argument checks. */
class LearningRateScheduleTest {
    static final double EXACT = 1e-15;

    @Test
    void constantIsOneEverywhere() {
        LearningRateSchedule s = LearningRateSchedule.constant();
        for (long step : new long[] {0, 1, 1000, Long.MAX_VALUE}) {
            assertEquals(1.0, s.factor(step), 0.0);
        }
    }

    @Test
    void warmupCosineAtEachPhase() {
        LearningRateSchedule s = LearningRateSchedule.warmupCosine(10, 110, 0.1);
        // Warm-up: (step + 1) / 10.
        assertEquals(0.1, s.factor(0), EXACT);
        assertEquals(0.5, s.factor(4), EXACT);
        assertEquals(1.0, s.factor(9), EXACT);
        // Decay starts at 1 (progress 0).
        assertEquals(1.0, s.factor(10), EXACT);
        // Quarter way: 0.1 + 0.9·(1 + cos(π/4))/2.
        assertEquals(0.1 + 0.9 * 0.5 * (1 + Math.sqrt(0.5)), s.factor(35), 1e-12);
        // Mid-decay: cos(π/2) = 0, so 0.1 + 0.9·0.5 = 0.55.
        assertEquals(0.55, s.factor(60), 1e-12);
        // End and after: the minimum.
        assertEquals(0.1, s.factor(110), 1e-12);
        assertEquals(0.1, s.factor(111), 1e-12);
        assertEquals(0.1, s.factor(10_000), 1e-12);
        // Monotone non-increasing after warm-up.
        for (long step = 10; step < 120; step++) {
            assertTrue(s.factor(step + 1) <= s.factor(step), "step " + step);
        }
    }

    @Test
    void warmupCosineEdgeCases() {
        LearningRateSchedule noWarmup = LearningRateSchedule.warmupCosine(0, 100, 0.0);
        assertEquals(1.0, noWarmup.factor(0), EXACT);
        assertEquals(0.5, noWarmup.factor(50), 1e-12);
        assertEquals(0.0, noWarmup.factor(100), 1e-12);
        LearningRateSchedule onlyWarmup = LearningRateSchedule.warmupCosine(5, 5, 0.2);
        assertEquals(0.2, onlyWarmup.factor(0), EXACT);
        assertEquals(1.0, onlyWarmup.factor(4), EXACT);
        assertEquals(0.2, onlyWarmup.factor(5), EXACT);
    }

    @Test
    void warmupStableDecayAtEachPhase() {
        LearningRateSchedule s = LearningRateSchedule.warmupStableDecay(10, 100, 20, 0.0);
        assertEquals(0.1, s.factor(0), EXACT);
        assertEquals(0.5, s.factor(4), EXACT);
        assertEquals(1.0, s.factor(9), EXACT);
        // Stable phase: steps 10..79.
        assertEquals(1.0, s.factor(10), 0.0);
        assertEquals(1.0, s.factor(50), 0.0);
        assertEquals(1.0, s.factor(79), 0.0);
        // Linear decay over the last 20 steps, reaching the minimum at the last step.
        assertEquals(0.95, s.factor(80), 1e-12);
        assertEquals(0.5, s.factor(89), 1e-12);
        assertEquals(0.0, s.factor(99), 1e-12);
        assertEquals(0.0, s.factor(100), 1e-12);
        assertEquals(0.0, s.factor(1000), 1e-12);

        LearningRateSchedule withFloor = LearningRateSchedule.warmupStableDecay(0, 10, 4, 0.2);
        assertEquals(1.0, withFloor.factor(0), 0.0);
        assertEquals(1.0, withFloor.factor(5), 0.0);
        assertEquals(1.0 - 0.8 * 0.25, withFloor.factor(6), 1e-12);
        assertEquals(0.2, withFloor.factor(9), 1e-12);
        assertEquals(0.2, withFloor.factor(50), 1e-12);

        LearningRateSchedule noDecay = LearningRateSchedule.warmupStableDecay(2, 10, 0, 0.0);
        assertEquals(0.5, noDecay.factor(0), EXACT);
        assertEquals(1.0, noDecay.factor(9), 0.0);
        assertEquals(1.0, noDecay.factor(500), 0.0);
    }

    @Test
    void invalidArgumentsThrow() {
        expectFailure(() -> LearningRateSchedule.warmupCosine(-1, 10, 0.0), "-1");
        expectFailure(() -> LearningRateSchedule.warmupCosine(11, 10, 0.0), "11");
        expectFailure(() -> LearningRateSchedule.warmupCosine(0, 0, 0.0), "total 0");
        expectFailure(() -> LearningRateSchedule.warmupCosine(1, 10, -0.1), "-0.1");
        expectFailure(() -> LearningRateSchedule.warmupCosine(1, 10, 1.5), "1.5");
        expectFailure(() -> LearningRateSchedule.warmupCosine(1, 10, Double.NaN), "NaN");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(5, 10, 6, 0.0), "decay 6");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(-1, 10, 2, 0.0), "-1");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(1, 10, -2, 0.0), "-2");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(1, 0, 0, 0.0), "total 0");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(1, 10, 2, Double.NaN), "NaN");
        expectFailure(() -> LearningRateSchedule.warmupStableDecay(1, 10, 2, 2.0), "2.0");
        expectFailure(() -> LearningRateSchedule.constant().factor(-1), "-1");
        expectFailure(() -> LearningRateSchedule.warmupCosine(1, 10, 0.0).factor(-3), "-3");
    }

    private static void expectFailure(Executable call, String inMessage) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(inMessage), "message '" + e.getMessage() + "' should contain '" + inMessage + "'");
    }
}
