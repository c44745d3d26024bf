package dev.muon4j.bench;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.DecoderModel;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * Data-parallel training of a real model (dense Llama or Mixture-of-Experts) on N in-process ranks (threads over
 * {@link dev.muon4j.distributed.InProcessCollectives}, each with its own 1-thread
 * {@link VectorBackend}), against one process on the same 1-thread backend: per step, the bytes
 * each rank sends and receives, the step time split into forward + backward, communication,
 * Newton–Schulz and the rest of the optimizer step ({@link Trainer.StepTiming}), and the
 * optimizer state each rank holds ({@link ShardedOptimizer#stateBytes()}) against one process
 * ({@link ShardedOptimizer#singleProcessStateBytes()}).
 *
 * <p>Each measurement trains {@code warmup + steps} steps of a fresh model with
 * {@link Trainer} in a fresh temporary run directory (deleted afterwards) and averages the
 * timings of the last {@code steps} over steps and ranks. The only checkpoint and validation are
 * at the last step, after its timings are taken, so they do not enter the numbers.
 */
public final class DistributedBenchmark {
    /** An optimizer and, on more than one rank, how Muon's matrices are split over the ranks. */
    public enum Setting {
        /** AdamW on every parameter, ZeRO-1 (the element-wise partition; no Muon matrices to split). */
        ADAMW(OptimizerChoice.ADAMW, ShardedOptimizer.Mode.DISTRIBUTED_MUON, "AdamW", "ZeRO-1"),
        /** The hybrid (Muon for hidden matrices, AdamW for the rest), Moonlight's Distributed Muon. */
        MUON_DISTRIBUTED(OptimizerChoice.MUON, ShardedOptimizer.Mode.DISTRIBUTED_MUON, "Muon (hybrid)", "DISTRIBUTED_MUON"),
        /** The hybrid, each Muon matrix owned whole by one rank. */
        MUON_WHOLE_MATRIX(OptimizerChoice.MUON, ShardedOptimizer.Mode.WHOLE_MATRIX, "Muon (hybrid)", "WHOLE_MATRIX");

        private final OptimizerChoice optimizer;
        private final ShardedOptimizer.Mode mode;
        private final String optimizerLabel;
        private final String shardingLabel;

        Setting(OptimizerChoice optimizer, ShardedOptimizer.Mode mode, String optimizerLabel, String shardingLabel) {
            this.optimizer = optimizer;
            this.mode = mode;
            this.optimizerLabel = optimizerLabel;
            this.shardingLabel = shardingLabel;
        }

        public OptimizerChoice optimizer() {
            return optimizer;
        }

        public ShardedOptimizer.Mode mode() {
            return mode;
        }

        /** "Muon (hybrid)" or "AdamW". */
        public String optimizerLabel() {
            return optimizerLabel;
        }

        /** How the state is split on {@code ranks} ranks: the mode's name, or "one process". */
        public String shardingLabel(int ranks) {
            return ranks == 1 ? "one process" : shardingLabel;
        }
    }

    /**
     * One setting on one rank count: means over ranks and measured steps.
     *
     * @param computeSeconds          forward and backward, per step
     * @param communicationSeconds    time inside collectives (including waiting for slower ranks), per step
     * @param newtonSchulzSeconds     Newton–Schulz, per step
     * @param optimizerSeconds        the rest of the optimizer step, per step
     * @param bytesSent               bytes a rank sent per step
     * @param bytesReceived           bytes a rank received per step
     * @param stateBytesLargest       optimizer state of the rank holding the most
     * @param stateBytesMean          optimizer state per rank, mean over ranks
     * @param singleProcessStateBytes optimizer state of one process for the same model
     */
    public record Measurement(Setting setting, int ranks, int measuredSteps, double computeSeconds, double communicationSeconds,
                              double newtonSchulzSeconds, double optimizerSeconds, double bytesSent, double bytesReceived,
                              long stateBytesLargest, double stateBytesMean, long singleProcessStateBytes) {
        /** The whole step: the four parts added. */
        public double stepSeconds() {
            return computeSeconds + communicationSeconds + newtonSchulzSeconds + optimizerSeconds;
        }

        /** Bytes a rank sent and received per step. */
        public double bytesMoved() {
            return bytesSent + bytesReceived;
        }

        /** Optimizer state of the fullest rank over that of one process (ideal: 1/N). */
        public double stateRatio() {
            return (double) stateBytesLargest / singleProcessStateBytes;
        }

        /** Mean optimizer state per rank over that of one process (1/N when nothing is padded or duplicated). */
        public double meanStateRatio() {
            return stateBytesMean / singleProcessStateBytes;
        }
    }

    /** Optimizer state per rank: the fullest rank's, the mean, and one process's. */
    public record StateBytes(long largest, double mean, long singleProcess) {
    }

    private final ModelConfig model;
    private final TokenDataset data;
    private final int batch;
    private final int warmup;
    private final int steps;
    private final Duration rankTimeout;

    /**
     * @param model       the model (its vocabulary at least the data's)
     * @param data        training data; validation (one batch, at the last step) takes from its held-out part
     * @param batch       sequences per step (the global batch, split over the ranks)
     * @param warmup      untimed steps first
     * @param steps       measured steps
     * @param rankTimeout how long a rank waits for the others in one collective before the group fails
     */
    public DistributedBenchmark(ModelConfig model, TokenDataset data, int batch, int warmup, int steps, Duration rankTimeout) {
        if (batch < 1 || warmup < 0 || steps < 1) {
            throw new IllegalArgumentException("batch and steps must be >= 1 and warm-up >= 0, got " + batch + ", " + steps
                    + " and " + warmup);
        }
        this.model = Objects.requireNonNull(model, "model");
        this.data = Objects.requireNonNull(data, "data");
        this.batch = batch;
        this.warmup = warmup;
        this.steps = steps;
        this.rankTimeout = Objects.requireNonNull(rankTimeout, "rank timeout");
    }

    /** The training config of every measured run: constant learning rate, no checkpoint or validation before the last step. */
    public TrainConfig trainConfig(OptimizerChoice optimizer) {
        int total = warmup + steps;
        return new TrainConfig(optimizer, 3e-3, 1.2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.CONSTANT, 0, total, 0.1,
                batch, 1, 1.0, 1, total, 1, 0, 1);
    }

    /**
     * Trains {@code setting} on {@code ranks} ranks ({@code ranks == 1}: one {@link Trainer}
     * without data parallelism, on a 1-thread Vector API backend) and returns the means.
     */
    public Measurement measure(Setting setting, int ranks) throws IOException, InterruptedException {
        if (ranks < 1) {
            throw new IllegalArgumentException("ranks must be >= 1, got " + ranks);
        }
        TrainConfig config = trainConfig(setting.optimizer());
        Path dir = Files.createTempDirectory("muon4j-bench-distributed-");
        List<Trainer.Result> results;
        try {
            if (ranks == 1) {
                try (Backend backend = new VectorBackend(1)) {
                    results = List.of(new Trainer(backend, model, config, data, dir, msg -> { }, null).run(false));
                }
            } else {
                results = LocalRanks.run(ranks, rankTimeout, comm -> {
                    try (Backend backend = new VectorBackend(1)) {
                        return new Trainer(backend, model, config, data, dir, msg -> { }, null,
                                new Trainer.DataParallel(comm, setting.mode())).run(false);
                    }
                });
            }
        } finally {
            deleteRecursively(dir);
        }
        List<Trainer.StepTiming> measured = new java.util.ArrayList<>();
        for (Trainer.Result r : results) {
            List<Trainer.StepTiming> timings = r.timings();
            if (timings.size() != warmup + steps) {
                throw new IllegalStateException("a rank reported " + timings.size() + " step timings, expected " + (warmup + steps));
            }
            measured.addAll(timings.subList(warmup, timings.size()));
        }
        Trainer.StepTiming m = Trainer.StepTiming.mean(measured);
        StateBytes state = stateBytes(setting, ranks);
        return new Measurement(setting, ranks, steps, m.computeSeconds(), m.communicationSeconds(), m.newtonSchulzSeconds(),
                m.optimizerSeconds(), m.bytesSent(), m.bytesReceived(), state.largest(), state.mean(), state.singleProcess());
    }

    /**
     * The optimizer state each of {@code ranks} ranks holds for this model and setting, read from
     * {@link ShardedOptimizer}s built on in-process ranks (the trainer builds the same ones; building
     * them allocates the state and the model's parameters but computes nothing).
     */
    public StateBytes stateBytes(Setting setting, int ranks) throws InterruptedException {
        TrainConfig config = trainConfig(setting.optimizer());
        List<long[]> perRank = LocalRanks.run(ranks, rankTimeout, comm -> {
            DecoderModel m = model.create();
            try (Backend backend = new VectorBackend(1);
                 ShardedOptimizer sharded = new ShardedOptimizer(comm, Trainer.settings(backend, config, m.headRows()),
                         m.parameters(), setting.mode())) {
                return new long[] {sharded.stateBytes(), sharded.singleProcessStateBytes()};
            }
        });
        long largest = 0;
        double sum = 0;
        for (long[] r : perRank) {
            largest = Math.max(largest, r[0]);
            sum += r[0];
        }
        return new StateBytes(largest, sum / ranks, perRank.getFirst()[1]);
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            List<Path> all = new ArrayList<>(paths.sorted(Comparator.reverseOrder()).toList());
            for (Path p : all) {
                Files.deleteIfExists(p);
            }
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }
}
