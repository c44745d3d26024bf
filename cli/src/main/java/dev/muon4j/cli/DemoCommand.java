package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.cli.demo.TeacherStudentMlp;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Optimizer;
import dev.muon4j.optim.Route;
import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Trains the same small MLP twice on a teacher-student regression task, once with AdamW on every
 * parameter and once with the hybrid optimizer (Muon on the hidden matrices, AdamW on head and
 * biases, Moonlight's scale so the learning rate is shared), and prints their losses side by side.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Train a small MLP with AdamW and with Muon (hybrid) side by side and print both loss curves.")
public final class DemoCommand implements Callable<Integer> {
    /** Batches of training samples, drawn once and cycled through. */
    private static final int TRAINING_BATCHES = 64;
    /** Batches of validation samples. */
    private static final int VALIDATION_BATCHES = 4;

    @Mixin
    BackendOptions backendOptions;

    @Option(names = "--steps", defaultValue = "400", description = "Optimizer steps per run (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--batch", defaultValue = "128", description = "Batch size (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--lr", defaultValue = "3e-3", description = "Learning rate shared by AdamW and Muon (default: ${DEFAULT-VALUE}).")
    double lr;

    @Option(names = "--weight-decay", defaultValue = "0.01", description = "Weight decay shared by both (default: ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the data and the initial weights (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--every", defaultValue = "25", description = "Print a row every N steps (default: ${DEFAULT-VALUE}).")
    int every;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (steps < 1 || batch < 1 || every < 1) {
            throw new IllegalArgumentException("--steps, --batch and --every must be positive, got " + steps + ", " + batch + ", " + every);
        }
        checkSizes();
        TeacherStudentMlp.Dataset train = TeacherStudentMlp.teacherData(seed, seed + 1, TRAINING_BATCHES * batch);
        TeacherStudentMlp.Dataset valid = TeacherStudentMlp.teacherData(seed, seed + 2, VALIDATION_BATCHES * batch);
        try (Backend backend = backendOptions.open()) {
            out.println(backendOptions.describe(backend));
            out.printf("task: student MLP %d→%d→%d→%d (ReLU) imitates a random tanh teacher; %d train / %d validation samples%n",
                    TeacherStudentMlp.INPUT, TeacherStudentMlp.HIDDEN, TeacherStudentMlp.HIDDEN, TeacherStudentMlp.OUTPUT,
                    train.size(), valid.size());
            out.printf("both runs: %d steps, batch %d, lr %.2g, weight decay %.2g, warm-up 5%% then cosine to 10%%%n%n",
                    steps, batch, lr, weightDecay);
            LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(Math.max(1, steps / 20), steps, 0.1);
            AdamWConfig adamw = AdamWConfig.builder().learningRate(lr).weightDecay(weightDecay).build();
            MuonConfig muon = MuonConfig.moonlight().learningRate(lr).weightDecay(weightDecay).build();

            TeacherStudentMlp adamModel = new TeacherStudentMlp(backend, seed, batch);
            HybridOptimizer adamOpt = HybridOptimizer.builder(backend).adamw(adamw).schedule(schedule)
                    .routeAll(Route.ADAMW).build(adamModel.parameters());
            TeacherStudentMlp muonModel = new TeacherStudentMlp(backend, seed, batch);
            HybridOptimizer muonOpt = HybridOptimizer.builder(backend).adamw(adamw).muon(muon).schedule(schedule)
                    .build(muonModel.parameters());

            out.printf("%6s  %14s  %14s%n", "step", "AdamW val loss", "Muon val loss");
            double[] adamCurve = new double[steps + 1];
            double[] muonCurve = new double[steps + 1];
            adamCurve[0] = validation(adamModel, valid);
            muonCurve[0] = validation(muonModel, valid);
            out.printf("%6d  %14.5f  %14.5f%n", 0, adamCurve[0], muonCurve[0]);
            int batches = train.size() / batch;
            for (int s = 1; s <= steps; s++) {
                int from = ((s - 1) % batches) * batch;
                trainStep(adamModel, adamOpt, train, from);
                trainStep(muonModel, muonOpt, train, from);
                adamCurve[s] = validation(adamModel, valid);
                muonCurve[s] = validation(muonModel, valid);
                if (s % every == 0 || s == steps) {
                    out.printf("%6d  %14.5f  %14.5f%n", s, adamCurve[s], muonCurve[s]);
                }
            }
            double target = adamCurve[steps];
            int reached = -1;
            for (int s = 0; s <= steps; s++) {
                if (muonCurve[s] <= target) {
                    reached = s;
                    break;
                }
            }
            out.println();
            out.printf("final validation loss: AdamW %.5f, Muon %.5f (Muon/AdamW = %.2f)%n",
                    adamCurve[steps], muonCurve[steps], muonCurve[steps] / adamCurve[steps]);
            if (reached >= 0) {
                out.printf("Muon reached AdamW's final validation loss at step %d of %d (%.0f%% of the steps)%n",
                        reached, steps, 100.0 * reached / steps);
            } else {
                out.printf("Muon did not reach AdamW's final validation loss within %d steps%n", steps);
            }
            out.flush();
        }
        return 0;
    }

    /**
     * The training set (64 batches) in one array of inputs, the loss curves in arrays of steps + 1,
     * and the heap the samples, the two models' activations and the curves surely need.
     */
    private void checkSizes() {
        long perBatch = (long) TRAINING_BATCHES * TeacherStudentMlp.INPUT;
        if ((long) batch * perBatch > SizeLimits.ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--batch %d is too large: the training set of %d batches "
                            + "needs %d × batch × %d inputs = %,d floats in one array, more than a Java array holds (%,d); the largest --batch is %d",
                    batch, TRAINING_BATCHES, TRAINING_BATCHES, TeacherStudentMlp.INPUT, batch * perBatch, SizeLimits.ARRAY_LIMIT,
                    SizeLimits.ARRAY_LIMIT / perBatch));
        }
        if (steps >= SizeLimits.ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--steps %d is too many: each loss curve keeps steps + 1 values "
                    + "in one array, and a Java array holds at most %,d", steps, SizeLimits.ARRAY_LIMIT));
        }
        int samplesPerBatch = TRAINING_BATCHES + VALIDATION_BATCHES;
        int activationsPerRow = 5 * TeacherStudentMlp.HIDDEN + 2 * TeacherStudentMlp.OUTPUT; // z1, h1, z2, h2, dh; y, dy
        SizeLimits.checkHeap(b -> new SizeLimits.Heap(List.of(
                new SizeLimits.Heap.Part("samples", SizeLimits.floats((long) samplesPerBatch * b * (TeacherStudentMlp.INPUT + TeacherStudentMlp.OUTPUT))),
                new SizeLimits.Heap.Part("activations of two models", SizeLimits.floats(2L * activationsPerRow * b)),
                new SizeLimits.Heap.Part("loss curves", 2L * Double.BYTES * (steps + 1L)))),
                batch, Runtime.getRuntime().maxMemory(), "--batch or --steps");
    }

    private void trainStep(TeacherStudentMlp model, Optimizer optimizer, TeacherStudentMlp.Dataset data, int from) {
        model.loss(data, from, batch, true);
        optimizer.step();
    }

    private double validation(TeacherStudentMlp model, TeacherStudentMlp.Dataset data) {
        double sum = 0;
        int chunks = data.size() / batch;
        for (int c = 0; c < chunks; c++) {
            sum += model.loss(data, c * batch, batch, false);
        }
        return sum / chunks;
    }
}
