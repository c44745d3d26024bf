package dev.muon4j.distributed;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Newton–Schulz work per rank on a Mixture-of-Experts-like parameter set: {@code layers} layers of
 * 3 stacks (gate, up, down) of {@code experts} experts of 64×96 (96×64 for down), with an
 * embedding and a head of 1000×96 through AdamW. For each mode and rank count, N in-process ranks
 * (each with its own 1-thread Vector API backend) take 2 untimed steps and then {@code steps}; per rank it prints the
 * multiply-adds of Newton–Schulz's products (counted by the backend, so the same on any version of
 * the sharded optimizer) as matrices' worth (one 64×96 matrix's multiply-adds each), the seconds in
 * Newton–Schulz and in the whole step, and the bytes sent and received, per step.
 *
 * <p>Run: {@code java --add-modules jdk.incubator.vector -cp core/target/classes:distributed/target/classes:distributed/target/test-classes
 * dev.muon4j.distributed.ExpertWorkMeasurement [layers experts steps ranks...]}
 */
public final class ExpertWorkMeasurement {
    /** Untimed steps before the measured ones, on every rank count. */
    private static final int WARMUP = 2;

    private ExpertWorkMeasurement() {
    }

    /** A real backend that counts the multiply-adds of the products it computes. */
    private static final class Counting implements Backend {
        private final Backend inner;
        long multiplyAdds;

        Counting(Backend inner) {
            this.inner = inner;
        }

        @Override
        public String description() {
            return inner.description();
        }

        @Override
        public BackendKind kind() {
            return inner.kind();
        }

        @Override
        public int threads() {
            return inner.threads();
        }

        @Override
        public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int aOffset, int lda,
                         float[] b, int bOffset, int ldb, float beta, float[] c, int cOffset, int ldc) {
            multiplyAdds += (long) m * n * k;
            inner.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
        }

        @Override
        public void syrk(boolean trans, int n, int k, float alpha, float[] a, int aOffset, int lda, float beta, float[] c, int cOffset,
                         int ldc) {
            multiplyAdds += (long) n * n * k;
            inner.syrk(trans, n, k, alpha, a, aOffset, lda, beta, c, cOffset, ldc);
        }

        @Override
        public void symm(int m, int n, float alpha, float[] s, int sOffset, int lds, float[] b, int bOffset, int ldb, float beta,
                         float[] c, int cOffset, int ldc) {
            multiplyAdds += (long) m * m * n;
            inner.symm(m, n, alpha, s, sOffset, lds, b, bOffset, ldb, beta, c, cOffset, ldc);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    static List<Parameter> model(int layers, int experts) {
        List<Parameter> params = new ArrayList<>();
        params.add(Parameter.zeros("model.embed_tokens.weight", ParamRole.EMBEDDING, 1000, 96));
        for (int l = 0; l < layers; l++) {
            String prefix = "model.layers." + l + ".mlp.experts.";
            params.add(Parameter.stackedMatrices(prefix + "gate_proj", experts, 64, 96, new float[experts * 6144], new float[experts * 6144]));
            params.add(Parameter.stackedMatrices(prefix + "up_proj", experts, 64, 96, new float[experts * 6144], new float[experts * 6144]));
            params.add(Parameter.stackedMatrices(prefix + "down_proj", experts, 96, 64, new float[experts * 6144], new float[experts * 6144]));
        }
        params.add(Parameter.zeros("lm_head.weight", ParamRole.HEAD, 1000, 96));
        SplittableRandom random = new SplittableRandom(3);
        for (Parameter p : params) {
            for (int i = 0; i < p.size(); i++) {
                p.value()[i] = (float) (0.02 * random.nextGaussian());
            }
        }
        return params;
    }

    private record PerRank(long multiplyAdds, double newtonSchulzSeconds, double stepSeconds, double bytesSent, double bytesReceived) {
    }

    public static void main(String[] args) throws Exception {
        int layers = args.length > 0 ? Integer.parseInt(args[0]) : 8;
        int experts = args.length > 1 ? Integer.parseInt(args[1]) : 16;
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        List<Integer> rankCounts = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            rankCounts.add(Integer.parseInt(args[i]));
        }
        if (rankCounts.isEmpty()) {
            rankCounts = List.of(1, 2, 4);
        }
        long perMatrix;
        try (Counting one = new Counting(new VectorBackend(1))) {
            List<Parameter> single = List.of(Parameter.matrix("m", 64, 96));
            HybridOptimizer opt = settings(one).build(single);
            opt.step();
            perMatrix = one.multiplyAdds;
        }
        int matrices = layers * 3 * experts;
        System.out.printf("%d layers × 3 stacks × %d experts of 64×96: %d matrices, %d multiply-adds of Newton–Schulz each%n",
                layers, experts, matrices, perMatrix);
        for (ShardedOptimizer.Mode mode : ShardedOptimizer.Mode.values()) {
            for (int ranks : rankCounts) {
                List<PerRank> results = LocalRanks.run(ranks, Duration.ofMinutes(5), comm -> {
                    try (Counting backend = new Counting(new VectorBackend(1))) {
                        List<Parameter> params = model(layers, experts);
                        try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), params, mode)) {
                            SplittableRandom random = new SplittableRandom(100 + comm.rank());
                            long ns = 0;
                            long total = 0;
                            long sent = 0;
                            long received = 0;
                            for (int s = 0; s < WARMUP + steps; s++) {
                                for (Parameter p : params) {
                                    for (int i = 0; i < p.size(); i++) {
                                        p.gradient()[i] = (float) random.nextGaussian();
                                    }
                                }
                                if (s == WARMUP) {
                                    backend.multiplyAdds = 0;
                                }
                                opt.step();
                                if (s >= WARMUP) {
                                    ns += opt.lastStep().newtonSchulzNanos();
                                    total += opt.lastStep().nanos();
                                    sent += opt.lastStep().bytesSent();
                                    received += opt.lastStep().bytesReceived();
                                }
                            }
                            return new PerRank(backend.multiplyAdds / steps, ns / 1e9 / steps, total / 1e9 / steps,
                                    (double) sent / steps, (double) received / steps);
                        }
                    }
                });
                StringBuilder line = new StringBuilder();
                long all = 0;
                for (int r = 0; r < ranks; r++) {
                    PerRank p = results.get(r);
                    all += p.multiplyAdds();
                    line.append(String.format("%n  rank %d: %6.1f matrices, NS %.3f s, step %.3f s, sent %.2f MB, received %.2f MB", r,
                            (double) p.multiplyAdds() / perMatrix, p.newtonSchulzSeconds(), p.stepSeconds(), p.bytesSent() / 1e6,
                            p.bytesReceived() / 1e6));
                }
                System.out.printf("%s, %d ranks: %.1f matrices' Newton–Schulz on all ranks per step%s%n", mode, ranks,
                        (double) all / perMatrix, line);
            }
        }
    }

    private static HybridOptimizer.Builder settings(Backend backend) {
        return HybridOptimizer.builder(backend)
                .muon(MuonConfig.moonlight().learningRate(0.02).build())
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build());
    }
}
