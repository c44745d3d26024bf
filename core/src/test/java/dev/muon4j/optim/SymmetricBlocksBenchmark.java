package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.tensor.DType;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Times bfloat16 Newton–Schulz (5 steps) on one of oneDNN's one-thread workers, as Muon runs a
 * model's matrices side by side, with A and A·A as full products and by blocks of several minimum
 * sizes ({@link NewtonSchulz#symmetricMinBlock}), in turns within every repetition so that a busy
 * machine slows all of them alike; prints the medians and their ratios to the full products. Not a
 * test: run by hand with the test classes on the class path (docs/BENCHMARKS.md has the command).
 *
 * <p>Arguments: repetitions (default 15), then the minimum block sizes to try (default 96 128 192).
 * Shapes: the small dense preset's 384×384 and 384×1024 (and its transpose), and 768² and 1024².
 */
final class SymmetricBlocksBenchmark {
    private static final int[][] SHAPES = {{384, 384}, {384, 1024}, {1024, 384}, {768, 768}, {1024, 1024}};

    private SymmetricBlocksBenchmark() {
    }

    public static void main(String[] args) {
        int repetitions = args.length > 0 ? Integer.parseInt(args[0]) : 15;
        int[] blocks = args.length > 1
                ? Arrays.stream(args, 1, args.length).mapToInt(Integer::parseInt).toArray()
                : new int[] {96, 128, 192};
        int[] variants = new int[blocks.length + 1];
        variants[0] = Integer.MAX_VALUE;
        System.arraycopy(blocks, 0, variants, 1, blocks.length);
        try (Backend backend = Backends.openOneDnn(2)) {
            List<Backend> workers = backend.concurrentWorkers();
            if (workers.isEmpty() || workers.get(0).bf16Matmul().isEmpty()) {
                System.out.println("no one-thread oneDNN worker with bfloat16 products on this processor");
                return;
            }
            Backend worker = workers.get(0);
            System.out.println("worker: " + worker.bf16Matmul().get().description() + "; repetitions " + repetitions);
            NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(DType.BF16);
            int saved = NewtonSchulz.symmetricMinBlock;
            try {
                for (int[] shape : SHAPES) {
                    run(worker, config, shape[0], shape[1], repetitions, variants);
                }
            } finally {
                NewtonSchulz.symmetricMinBlock = saved;
            }
        }
    }

    private static void run(Backend worker, NewtonSchulzConfig config, int rows, int cols, int repetitions, int[] variants) {
        Random random = new Random(rows * 31L + cols);
        float[] input = new float[rows * cols];
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) random.nextGaussian();
        }
        float[] output = new float[input.length];
        NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
        double[][] seconds = new double[variants.length][repetitions];
        for (int r = -2; r < repetitions; r++) {  // two rounds of warm-up: primitives created, code compiled
            for (int v = 0; v < variants.length; v++) {
                NewtonSchulz.symmetricMinBlock = variants[v];
                long start = System.nanoTime();
                NewtonSchulz.orthogonalize(worker, config, input, 0, rows, cols, output, 0, workspace);
                if (r >= 0) {
                    seconds[v][r] = (System.nanoTime() - start) / 1e9;
                }
            }
        }
        int m = Math.min(rows, cols);
        StringBuilder line = new StringBuilder(String.format("%4d×%-4d full %7.2f ms", rows, cols, 1e3 * median(seconds[0])));
        for (int v = 1; v < variants.length; v++) {
            NewtonSchulz.symmetricMinBlock = variants[v];
            line.append(String.format("  | min %d (blocks of %d) %7.2f ms = %.3f×", variants[v],
                    NewtonSchulz.symmetricBlock(m), 1e3 * median(seconds[v]), median(seconds[v]) / median(seconds[0])));
        }
        System.out.println(line);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
