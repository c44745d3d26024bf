package dev.muon4j.train;

import dev.muon4j.optim.NewtonSchulzConfig;
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
 * @param routerBiasRate   γ of the Mixture-of-Experts routers' auxiliary-loss-free load balancing: after each step
 *                         every expert's choice bias moves by γ towards balance ({@link dev.muon4j.nn.MixtureOfExperts#balance});
 *                         DeepSeek-V3 uses 0.001 (arXiv 2412.19437, §4.2); 0 turns it off; no effect on a dense model
 */
public record TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1, double beta2,
                          double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                          int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                          long checkpointEvery, int keepCheckpoints, MuonVariant muonVariant, boolean cautiousWeightDecay,
                          boolean perHeadQk, double qkClipThreshold, NewtonSchulzConfig.Method nsMethod, double routerBiasRate) {

    /** DeepSeek-V3's bias update speed γ for the first 14.3T of its tokens (arXiv 2412.19437, §4.2). */
    public static final double DEFAULT_ROUTER_BIAS_RATE = 0.001;

    /** With DeepSeek-V3's router bias rate. */
    public TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1,
                       double beta2, double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                       int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                       long checkpointEvery, int keepCheckpoints, MuonVariant muonVariant, boolean cautiousWeightDecay,
                       boolean perHeadQk, double qkClipThreshold, NewtonSchulzConfig.Method nsMethod) {
        this(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, nsMethod, DEFAULT_ROUTER_BIAS_RATE);
    }

    /** Moonlight's Muon with plain weight decay. */
    public TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1,
                       double beta2, double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                       int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                       long checkpointEvery, int keepCheckpoints) {
        this(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                MuonVariant.MOONLIGHT, false, false);
    }

    /** Without QK-clip. */
    public TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1,
                       double beta2, double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                       int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                       long checkpointEvery, int keepCheckpoints, MuonVariant muonVariant, boolean cautiousWeightDecay,
                       boolean perHeadQk) {
        this(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, 0);
    }

    /** With the standard Newton–Schulz iteration. */
    public TrainConfig(OptimizerChoice optimizer, double learningRate, double muonLearningRate, double weightDecay, double beta1,
                       double beta2, double muonMomentum, ScheduleKind schedule, long warmupSteps, long steps, double minLrFactor,
                       int batchSize, int accumulation, double clipNorm, long seed, long evalEvery, int evalBatches,
                       long checkpointEvery, int keepCheckpoints, MuonVariant muonVariant, boolean cautiousWeightDecay,
                       boolean perHeadQk, double qkClipThreshold) {
        this(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, NewtonSchulzConfig.Method.STANDARD);
    }

    public TrainConfig {
        Objects.requireNonNull(optimizer, "optimizer");
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(muonVariant, "Muon variant");
        Objects.requireNonNull(nsMethod, "Newton–Schulz method");
        if (nsMethod == NewtonSchulzConfig.Method.GRAM && muonVariant == MuonVariant.TORCH) {
            throw new IllegalArgumentException("the Gram Newton–Schulz method runs in float32 only; Muon variant TORCH computes "
                    + "Newton–Schulz in torch's bfloat16 arithmetic, which has no Gram form");
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
        return new TrainConfig(o, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps, steps,
                minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints, muonVariant, cautiousWeightDecay, perHeadQk,
                qkClipThreshold, nsMethod, routerBiasRate);
    }

    /** This config with another Muon variant, cautious weight decay and per-head query/key orthogonalization on or off. */
    public TrainConfig withMuon(MuonVariant variant, boolean cautious, boolean perHead) {
        return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps,
                steps, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                variant, cautious, perHead, qkClipThreshold, nsMethod, routerBiasRate);
    }

    /** This config with QK-clip at threshold τ ({@code tau} 0: off). */
    public TrainConfig withQkClip(double tau) {
        return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps,
                steps, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, tau, nsMethod, routerBiasRate);
    }

    /** This config with another Newton–Schulz method for Muon's matrices. */
    public TrainConfig withNsMethod(NewtonSchulzConfig.Method method) {
        return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps,
                steps, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, method, routerBiasRate);
    }

    /** This config with the routers' bias update speed γ (0: off). */
    public TrainConfig withRouterBiasRate(double gamma) {
        return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule, warmupSteps,
                steps, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches, checkpointEvery, keepCheckpoints,
                muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, nsMethod, gamma);
    }

    /** Whether QK-clip runs after each optimizer step ({@code qkClipThreshold > 0}). */
    public boolean qkClip() {
        return qkClipThreshold > 0;
    }

    public TrainConfig withSteps(long s) {
        return new TrainConfig(optimizer, learningRate, muonLearningRate, weightDecay, beta1, beta2, muonMomentum, schedule,
                Math.min(warmupSteps, s), s, minLrFactor, batchSize, accumulation, clipNorm, seed, evalEvery, evalBatches,
                checkpointEvery, keepCheckpoints, muonVariant, cautiousWeightDecay, perHeadQk, qkClipThreshold, nsMethod, routerBiasRate);
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
        return m;
    }
}
