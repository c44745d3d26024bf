package dev.muon4j.train;

import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.tensor.DType;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * How to train. Step counts are optimizer steps; each takes {@code accumulation} micro-batches of
 * {@code batchSize} sequences, so a step sees {@code batchSize · accumulation · T} tokens.
 *
 * @param optimizer        AdamW everywhere, or Muon for hidden matrices + AdamW for the rest
 * @param learningRate     peak learning rate of AdamW (every parameter with ADAMW; embedding, head and norms with MUON)
 * @param muonLearningRate peak learning rate of Muon's hidden matrices (Moonlight scale 0.2·√max(out, in)); Moonlight uses
 *                         the AdamW rate, short runs of small models want a larger one (see docs/EXPERIMENTS.md)
 * @param weightDecay      decoupled weight decay, shared
 * @param beta1            AdamW β1
 * @param beta2            AdamW β2
 * @param muonMomentum     Muon's momentum μ (classic form, Nesterov)
 * @param schedule         learning-rate schedule shape
 * @param warmupSteps      linear warm-up steps
 * @param steps            total optimizer steps
 * @param minLrFactor      final learning rate as a fraction of the peak
 * @param batchSize        sequences per micro-batch
 * @param accumulation     micro-batches per optimizer step (gradient accumulation)
 * @param clipNorm         global gradient-norm clip; 0 turns it off
 * @param seed             seed of the initial weights and the data order
 * @param evalEvery        validation every this many steps (and at the last step)
 * @param evalBatches      validation batches per evaluation
 * @param checkpointEvery  checkpoint every this many steps (and at the last step); 0: only at the end
 * @param keepCheckpoints  newest checkpoints kept
 * @param muonVariant      which Muon the hidden matrices get (with {@link OptimizerChoice#MUON})
 * @param cautiousWeightDecay decay only weights the update already pushes towards zero (Muon's matrices)
 * @param perHeadQk        orthogonalize the attention's query and key projections head by head
 * @param qkClipThreshold  QK-clip's τ: after each optimizer step, the query and key projections of every attention head
 *                         whose largest pre-softmax logit in that step exceeded τ are scaled down to bring it to τ
 *                         ({@link dev.muon4j.optim.QkClip}; Kimi K2 uses 100); 0 turns it off
 * @param nsMethod         how Muon's Newton–Schulz is computed: the standard iteration or Gram Newton–Schulz
 *                         ({@link NewtonSchulzConfig.Method}); same result in exact arithmetic. GRAM runs in float32
 *                         only, so not with {@link MuonVariant#TORCH}
 * @param nsPrecision      the precision of Muon's Newton–Schulz: {@link DType#F32}, or {@link DType#BF16} (bfloat16
 *                         products with float32 sums, twice as fast where the processor multiplies bfloat16,
 *                         {@link dev.muon4j.backend.Backend#bf16Matmul()}); {@link MuonVariant#TORCH} is always BF16,
 *                         GRAM always F32
 * @param routerBiasRate   γ of the Mixture-of-Experts routers' auxiliary-loss-free load balancing: after each step
 *                         every expert's choice bias moves by γ towards balance ({@link dev.muon4j.nn.MixtureOfExperts#balance});
 *                         DeepSeek-V3 uses 0.001 (arXiv 2412.19437, §4.2); 0 turns it off; no effect on a dense model
 */
public record TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1, double beta2,
                          double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                          int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                          long checkpointEvery, int keepCheckpoints, MuonVariant muonVariant, boolean cautiousWeightDecay,
                          boolean perHeadQk, double qkClipThreshold, NewtonSchulzConfig.Method nsMethod, double routerBiasRate,
                          DType nsPrecision) {

    /** DeepSeek-V3's bias update speed γ for the first 14.3T of its tokens (arXiv 2412.19437, §4.2). */
    public static final double DEFAULT_ROUTER_BIAS_RATE = 0.001;

    /**
     * Moonlight's Muon with plain weight decay, whole-matrix orthogonalization, no QK-clip, the standard
     * Newton–Schulz iteration and DeepSeek-V3's router bias rate; {@link #toBuilder()} changes any of them.
     */
    public TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1,
                       double beta2, double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                       int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                       long checkpointEvery, int keepCheckpoints) {
        this(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                MuonVariant.MOONLIGHT, false, false, 0, NewtonSchulzConfig.Method.STANDARD, DEFAULT_ROUTER_BIAS_RATE,
                MuonVariant.MOONLIGHT.defaultPrecision());
    }

    public TrainConfig {
        Objects.requireNonNull(optimizer, "optimizer");
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(muonVariant, "Muon variant");
        Objects.requireNonNull(nsMethod, "Newton–Schulz method");
        Objects.requireNonNull(nsPrecision, "Newton–Schulz precision");
        if (nsMethod == NewtonSchulzConfig.Method.GRAM && muonVariant == MuonVariant.TORCH) {
            throw new IllegalArgumentException("the Gram Newton–Schulz method runs in float32 only; Muon variant TORCH computes "
                    + "Newton–Schulz in torch's bfloat16 arithmetic, which has no Gram form");
        }
        if (muonVariant == MuonVariant.TORCH && nsPrecision != DType.BF16) {
            throw new IllegalArgumentException("Muon variant TORCH computes Newton–Schulz in torch's bfloat16 arithmetic; "
                    + "a Newton–Schulz precision of " + nsPrecision + " does not apply to it");
        }
        if (nsMethod == NewtonSchulzConfig.Method.GRAM && nsPrecision != DType.F32) {
            throw new IllegalArgumentException("the Gram Newton–Schulz method runs in float32 only, got precision " + nsPrecision);
        }
        nonNegative("learning rate", learningRate);
        nonNegative("Muon learning rate", muonLearningRate);
        nonNegative("weight decay", weightDecay);
        unit("beta1", beta1);
        unit("beta2", beta2);
        unit("Muon momentum", muonMomentum);
        if (steps < 1) {
            throw new IllegalArgumentException("training needs at least 1 step, got " + steps);
        }
        if (warmupSteps < 0 || warmupSteps > steps) {
            throw new IllegalArgumentException("warm-up steps must be in [0, steps=" + steps + "], got " + warmupSteps);
        }
        if (!(minLrFactor >= 0 && minLrFactor <= 1)) {
            throw new IllegalArgumentException("minimum learning-rate factor must be in [0, 1], got " + minLrFactor);
        }
        if (batchSize < 1 || accumulation < 1) {
            throw new IllegalArgumentException("batch size and accumulation must be >= 1, got " + batchSize + " and " + accumulation);
        }
        nonNegative("gradient clipping norm", clipNorm);
        nonNegative("QK-clip threshold", qkClipThreshold);
        nonNegative("router bias rate", routerBiasRate);
        if (evalEvery < 1 || evalBatches < 1) {
            throw new IllegalArgumentException("evalEvery and evalBatches must be >= 1, got " + evalEvery + " and " + evalBatches);
        }
        if (checkpointEvery < 0 || keepCheckpoints < 1) {
            throw new IllegalArgumentException("checkpointEvery must be >= 0 and keepCheckpoints >= 1, got "
                    + checkpointEvery + " and " + keepCheckpoints);
        }
    }

    private static void nonNegative(String what, double v) {
        if (!(v >= 0) || !Double.isFinite(v)) {
            throw new IllegalArgumentException(what + " must be finite and >= 0, got " + v);
        }
    }

    private static void unit(String what, double v) {
        if (!(v >= 0 && v < 1)) {
            throw new IllegalArgumentException(what + " must be in [0, 1), got " + v);
        }
    }

    /** Sequences per optimizer step. */
    public int sequencesPerStep() {
        return batchSize * accumulation;
    }

    public TrainConfig withOptimizer(OptimizerChoice o) {
        return toBuilder().optimizer(o).build();
    }

    /**
     * This config with another Muon variant (and that variant's Newton–Schulz precision, {@link MuonVariant#defaultPrecision()}),
     * cautious weight decay and per-head query/key orthogonalization on or off.
     */
    public TrainConfig withMuon(MuonVariant variant, boolean cautious, boolean perHead) {
        return toBuilder().muonVariant(variant).nsPrecision(variant.defaultPrecision()).cautiousWeightDecay(cautious).perHeadQk(perHead).build();
    }

    /** This config with Muon's Newton–Schulz in another precision. */
    public TrainConfig withNsPrecision(DType precision) {
        return toBuilder().nsPrecision(precision).build();
    }

    /** This config with QK-clip at threshold τ ({@code tau} 0: off). */
    public TrainConfig withQkClip(double tau) {
        return toBuilder().qkClipThreshold(tau).build();
    }

    /** This config with another Newton–Schulz method for Muon's matrices. */
    public TrainConfig withNsMethod(NewtonSchulzConfig.Method method) {
        return toBuilder().nsMethod(method).build();
    }

    /** This config with the routers' bias update speed γ (0: off). */
    public TrainConfig withRouterBiasRate(double gamma) {
        return toBuilder().routerBiasRate(gamma).build();
    }

    /** Whether QK-clip runs after each optimizer step ({@code qkClipThreshold > 0}). */
    public boolean qkClip() {
        return qkClipThreshold > 0;
    }

    public TrainConfig withSteps(long s) {
        return toBuilder().warmupSteps(Math.min(warmupSteps, s)).steps(s).build();
    }

    /** Field name → value, for JSON. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("optimizer", optimizer.name());
        m.put("learning_rate", learningRate);
        m.put("muon_learning_rate", muonLearningRate);
        m.put("weight_decay", weightDecay);
        m.put("beta1", beta1);
        m.put("beta2", beta2);
        m.put("muon_momentum", muonMomentum);
        m.put("schedule", schedule.name());
        m.put("warmup_steps", warmupSteps);
        m.put("steps", steps);
        m.put("min_lr_factor", minLrFactor);
        m.put("batch_size", batchSize);
        m.put("accumulation", accumulation);
        m.put("clip_norm", clipNorm);
        m.put("seed", seed);
        m.put("eval_every", evalEvery);
        m.put("eval_batches", evalBatches);
        m.put("checkpoint_every", checkpointEvery);
        m.put("keep_checkpoints", keepCheckpoints);
        m.put("muon_variant", muonVariant.name());
        m.put("cautious_weight_decay", cautiousWeightDecay);
        m.put("per_head_qk", perHeadQk);
        m.put("qk_clip_threshold", qkClipThreshold);
        m.put("ns_method", nsMethod.name());
        m.put("router_bias_rate", routerBiasRate);
        m.put("ns_precision", nsPrecision.name());
        return m;
    }

    /** A builder holding this config's values: change some, {@link Builder#build()} checks them all. */
    public Builder toBuilder() {
        Builder b = new Builder();
            b.optimizer = optimizer;
            b.learningRate = learningRate;
            b.muonLearningRate = muonLearningRate;
            b.weightDecay = weightDecay;
            b.beta1 = beta1;
            b.beta2 = beta2;
            b.muonMomentum = muonMomentum;
            b.schedule = schedule;
            b.warmupSteps = warmupSteps;
            b.steps = steps;
            b.minLrFactor = minLrFactor;
            b.batchSize = batchSize;
            b.accumulation = accumulation;
            b.clipNorm = clipNorm;
            b.seed = seed;
            b.evalEvery = evalEvery;
            b.evalBatches = evalBatches;
            b.checkpointEvery = checkpointEvery;
            b.keepCheckpoints = keepCheckpoints;
            b.muonVariant = muonVariant;
            b.cautiousWeightDecay = cautiousWeightDecay;
            b.perHeadQk = perHeadQk;
            b.qkClipThreshold = qkClipThreshold;
            b.nsMethod = nsMethod;
            b.routerBiasRate = routerBiasRate;
            b.nsPrecision = nsPrecision;
        return b;
    }

    /** The values of a {@link TrainConfig}, set one by one; {@link #build()} validates them as the constructor does. */
    public static final class Builder {
        private OptimizerChoice optimizer;
        private double learningRate;
        private double muonLearningRate;
        private double weightDecay;
        private double beta1;
        private double beta2;
        private double muonMomentum;
        private ScheduleKind schedule;
        private long warmupSteps;
        private long steps;
        private double minLrFactor;
        private int batchSize;
        private int accumulation;
        private double clipNorm;
        private long seed;
        private long evalEvery;
        private int evalBatches;
        private long checkpointEvery;
        private int keepCheckpoints;
        private MuonVariant muonVariant;
        private boolean cautiousWeightDecay;
        private boolean perHeadQk;
        private double qkClipThreshold;
        private NewtonSchulzConfig.Method nsMethod;
        private double routerBiasRate;
        private DType nsPrecision;

        private Builder() {
        }

        public Builder optimizer(OptimizerChoice value) {
            this.optimizer = value;
            return this;
        }

        public Builder learningRate(double value) {
            this.learningRate = value;
            return this;
        }

        public Builder muonLearningRate(double value) {
            this.muonLearningRate = value;
            return this;
        }

        public Builder weightDecay(double value) {
            this.weightDecay = value;
            return this;
        }

        public Builder beta1(double value) {
            this.beta1 = value;
            return this;
        }

        public Builder beta2(double value) {
            this.beta2 = value;
            return this;
        }

        public Builder muonMomentum(double value) {
            this.muonMomentum = value;
            return this;
        }

        public Builder schedule(ScheduleKind value) {
            this.schedule = value;
            return this;
        }

        public Builder warmupSteps(long value) {
            this.warmupSteps = value;
            return this;
        }

        public Builder steps(long value) {
            this.steps = value;
            return this;
        }

        public Builder minLrFactor(double value) {
            this.minLrFactor = value;
            return this;
        }

        public Builder batchSize(int value) {
            this.batchSize = value;
            return this;
        }

        public Builder accumulation(int value) {
            this.accumulation = value;
            return this;
        }

        public Builder clipNorm(double value) {
            this.clipNorm = value;
            return this;
        }

        public Builder seed(long value) {
            this.seed = value;
            return this;
        }

        public Builder evalEvery(long value) {
            this.evalEvery = value;
            return this;
        }

        public Builder evalBatches(int value) {
            this.evalBatches = value;
            return this;
        }

        public Builder checkpointEvery(long value) {
            this.checkpointEvery = value;
            return this;
        }

        public Builder keepCheckpoints(int value) {
            this.keepCheckpoints = value;
            return this;
        }

        public Builder muonVariant(MuonVariant value) {
            this.muonVariant = value;
            return this;
        }

        public Builder cautiousWeightDecay(boolean value) {
            this.cautiousWeightDecay = value;
            return this;
        }

        public Builder perHeadQk(boolean value) {
            this.perHeadQk = value;
            return this;
        }

        public Builder qkClipThreshold(double value) {
            this.qkClipThreshold = value;
            return this;
        }

        public Builder nsMethod(NewtonSchulzConfig.Method value) {
            this.nsMethod = value;
            return this;
        }

        public Builder routerBiasRate(double value) {
            this.routerBiasRate = value;
            return this;
        }

        public Builder nsPrecision(DType value) {
            this.nsPrecision = value;
            return this;
        }

        public TrainConfig build() {
            return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints, muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, nsMethod, routerBiasRate, nsPrecision);
        }
    }
}
