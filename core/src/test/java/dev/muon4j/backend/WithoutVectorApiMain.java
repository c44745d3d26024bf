package dev.muon4j.backend;

import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The program {@code WithoutVectorApiTest} runs in a child {@code java} started without
 * {@code --add-modules jdk.incubator.vector}: it reports whether the module is there, then runs
 * {@link #STEPS} hybrid-optimizer steps on the pure-Java backend and on the backend AUTO picks, and
 * prints every parameter value after them, as float bits in hexadecimal, one line per backend.
 * Uses nothing but muon4j-core, so that the child's class path is core's classes and this class.
 */
public final class WithoutVectorApiMain {
    /** Steps each run takes. */
    static final int STEPS = 3;

    private WithoutVectorApiMain() {
    }

    public static void main(String[] args) {
        System.out.println("vector-api " + VectorApi.present());
        for (BackendKind kind : List.of(BackendKind.VECTOR, BackendKind.AUTO)) {
            try (Backend backend = Backends.open(new BackendConfig(kind, 1))) {
                StringBuilder line = new StringBuilder(kind.name()).append(' ').append(backend.kind());
                for (float value : run(backend)) {
                    line.append(' ').append(Integer.toHexString(Float.floatToRawIntBits(value)));
                }
                System.out.println(line);
            }
        }
    }

    /**
     * {@link #STEPS} steps of Moonlight's Muon on two hidden matrices (one wide, one tall) and a
     * stack of three experts, AdamW on an embedding and a norm, gradient clipping at norm 1, a
     * warm-up-cosine schedule; seeded values and gradients. Returns all parameter values after the
     * steps, parameter after parameter.
     */
    static float[] run(Backend backend) {
        SplittableRandom random = new SplittableRandom(20261128);
        List<Parameter> params = List.of(
                filled(Parameter.matrix("layers.0.attn.q_proj", 24, 40), random),
                filled(Parameter.matrix("layers.0.mlp.down_proj", 40, 24), random),
                filled(Parameter.stackedMatrices("layers.0.mlp.experts", 3, 16, 8, new float[3 * 16 * 8], new float[3 * 16 * 8]), random),
                filled(Parameter.zeros("embed", ParamRole.EMBEDDING, 50, 24), random),
                filled(Parameter.zeros("layers.0.norm", ParamRole.NORM, 24), random));
        HybridOptimizer optimizer = HybridOptimizer.builder(backend)
                .adamw(AdamWConfig.builder().learningRate(3e-3).weightDecay(0.1).build())
                .muon(MuonConfig.moonlight().learningRate(2e-2).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1))
                .clipGradientNorm(1.0)
                .build(params);
        for (int step = 0; step < STEPS; step++) {
            for (Parameter p : params) {
                for (int i = 0; i < p.size(); i++) {
                    p.gradient()[i] = (float) random.nextGaussian();
                }
            }
            optimizer.step();
        }
        int total = params.stream().mapToInt(Parameter::size).sum();
        float[] out = new float[total];
        int at = 0;
        for (Parameter p : params) {
            System.arraycopy(p.value(), 0, out, at, p.size());
            at += p.size();
        }
        return out;
    }

    private static Parameter filled(Parameter p, SplittableRandom random) {
        for (int i = 0; i < p.size(); i++) {
            p.value()[i] = (float) (random.nextGaussian() * 0.1);
        }
        return p;
    }
}
