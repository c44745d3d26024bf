package dev.muon4j.optim;

/**
 * A learning-rate schedule: the factor each base learning rate is multiplied by at a step
 * (0-based: the first optimizer step is step 0). Pure functions of the step.
 */
public sealed interface LearningRateSchedule {

    /** The factor at {@code step} (≥ 0). */
    double factor(long step);

    /** Factor 1 at every step. */
    static LearningRateSchedule constant() {
        return new Constant();
    }

    /**
     * Linear warm-up from 1/warmupSteps to 1 over {@code warmupSteps}, then a cosine from 1 down to
     * {@code minFactor} at {@code totalSteps}, and {@code minFactor} after.
     */
    static LearningRateSchedule warmupCosine(long warmupSteps, long totalSteps, double minFactor) {
        return new WarmupCosine(warmupSteps, totalSteps, minFactor);
    }

    /**
     * Warmup-stable-decay (WSD): linear warm-up over {@code warmupSteps}, factor 1 until the last
     * {@code decaySteps} of {@code totalSteps}, then linear decay to {@code minFactor}.
     */
    static LearningRateSchedule warmupStableDecay(long warmupSteps, long totalSteps, long decaySteps, double minFactor) {
        return new WarmupStableDecay(warmupSteps, totalSteps, decaySteps, minFactor);
    }

    private static void checkStep(long step) {
        if (step < 0) {
            throw new IllegalArgumentException("schedule step must be >= 0, got " + step);
        }
    }

    private static double warmup(long step, long warmupSteps) {
        return step < warmupSteps ? (double) (step + 1) / warmupSteps : 1.0;
    }

    /** See {@link LearningRateSchedule#constant()}. */
    record Constant() implements LearningRateSchedule {
        @Override
        public double factor(long step) {
            checkStep(step);
            return 1.0;
        }
    }

    /** See {@link LearningRateSchedule#warmupCosine}. */
    record WarmupCosine(long warmupSteps, long totalSteps, double minFactor) implements LearningRateSchedule {
        public WarmupCosine {
            if (warmupSteps < 0 || totalSteps < 1 || warmupSteps > totalSteps) {
                throw new IllegalArgumentException("warmup-cosine needs 0 <= warmupSteps <= totalSteps and totalSteps >= 1, got warmup "
                        + warmupSteps + ", total " + totalSteps);
            }
            if (!(minFactor >= 0 && minFactor <= 1)) {
                throw new IllegalArgumentException("warmup-cosine minFactor must be in [0, 1], got " + minFactor);
            }
        }

        @Override
        public double factor(long step) {
            checkStep(step);
            if (step < warmupSteps) {
                return warmup(step, warmupSteps);
            }
            long decay = totalSteps - warmupSteps;
            double progress = decay == 0 ? 1.0 : Math.min(1.0, (double) (step - warmupSteps) / decay);
            return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * progress));
        }
    }

    /** See {@link LearningRateSchedule#warmupStableDecay}. */
    record WarmupStableDecay(long warmupSteps, long totalSteps, long decaySteps, double minFactor) implements LearningRateSchedule {
        public WarmupStableDecay {
            if (warmupSteps < 0 || decaySteps < 0 || totalSteps < 1 || warmupSteps + decaySteps > totalSteps) {
                throw new IllegalArgumentException("warmup-stable-decay needs warmupSteps + decaySteps <= totalSteps, got warmup "
                        + warmupSteps + ", decay " + decaySteps + ", total " + totalSteps);
            }
            if (!(minFactor >= 0 && minFactor <= 1)) {
                throw new IllegalArgumentException("warmup-stable-decay minFactor must be in [0, 1], got " + minFactor);
            }
        }

        @Override
        public double factor(long step) {
            checkStep(step);
            if (step < warmupSteps) {
                return warmup(step, warmupSteps);
            }
            long decayStart = totalSteps - decaySteps;
            if (decaySteps == 0 || step < decayStart) {
                return 1.0;
            }
            double progress = Math.min(1.0, (double) (step - decayStart + 1) / decaySteps);
            return 1.0 + (minFactor - 1.0) * progress;
        }
    }
}
