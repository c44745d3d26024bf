package dev.muon4j.cli;

import dev.muon4j.nn.ArrayKind;
import dev.muon4j.nn.ArrayKind.Dimension;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.OptimizerChoice;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.IntFunction;

/**
 * Checks a run's sizes before anything is allocated: every array the model and one forward and
 * backward pass allocate against the longest Java array, and a lower bound of the heap the run
 * needs against the JVM's limit. A size that cannot work is an {@link IllegalArgumentException}
 * whose one-line message names the flag, its value, the limit, why, and the largest value that
 * fits; the command line prints it as {@code muon4j: …}.
 *
 * <p>The heap bound counts only memory that is surely held at once: every parameter's value and
 * gradient, the optimizer's state, and the floats a forward and backward pass keep in the
 * graph's pool ({@link LlamaConfig#trainingStepFloats}); the pool keeps its arrays for the whole
 * run. It leaves out the data, the JVM's own memory and the garbage collector's headroom, so a run
 * it lets through may still run out of memory, but one it refuses cannot fit.
 */
final class SizeLimits {
    /** The longest Java array, in elements. */
    static final long ARRAY_LIMIT = Integer.MAX_VALUE;

    private static final double GIB = 1L << 30;

    private SizeLimits() {
    }

    /**
     * The size flags of one command: whether it has flags for the model's shape (train, compare and
     * bench distributed do; bench training's model is fixed), and the values they start from (the
     * preset's shape and the default batch). A size that is too large is blamed on the flag among
     * its factors that moved furthest from where it starts.
     *
     * @param baseline     the model the flags start from
     * @param defaultBatch the default of {@code --batch}
     * @param shapeFlags   whether {@code --context}, {@code --width}, {@code --mlp-width} and {@code --heads} exist
     */
    record Flags(LlamaConfig baseline, int defaultBatch, boolean shapeFlags) {
        Flags {
            if (defaultBatch < 1) {
                throw new IllegalArgumentException("default batch must be >= 1, got " + defaultBatch);
            }
        }

        /** The flag that sets {@code d}, or null when this command has none. */
        String flag(Dimension d) {
            return switch (d) {
                case BATCH -> "--batch";
                case CONTEXT -> shapeFlags ? "--context" : null;
                case WIDTH -> shapeFlags ? "--width" : null;
                case MLP_WIDTH -> shapeFlags ? "--mlp-width" : null;
                case HEADS -> shapeFlags ? "--heads" : null;
                case VOCABULARY -> null;
            };
        }
    }

    /**
     * Checks that no array of {@code model} and of a forward and backward pass over one process's
     * share of the batch is longer than a Java array, and, on several ranks, that the parameters
     * fit one array (a checkpoint gathers the optimizer state of all parameters into one).
     *
     * @param model the model
     * @param batch the global {@code --batch}, at least 1
     * @param ranks the data-parallel ranks the batch is split over, at least 1; each process's
     *              largest micro-batch is ⌈batch / ranks⌉ sequences
     * @param flags the command's size flags
     * @throws IllegalArgumentException naming the flag, its value, the array, the limit and the largest value that fits
     */
    static void checkArrays(ModelConfig model, int batch, int ranks, Flags flags) {
        checkArrays(model.trunk(), batch, ranks, flags);
        if (model instanceof DeepSeekConfig moe) {
            checkExperts(moe, rowsPerRank(batch, ranks));
            if (moe.mla() != null) {
                checkLatentAttention(moe, rowsPerRank(batch, ranks));
            }
        }
        if (ranks > 1 && model.parameterCount() > ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--ranks %d is too many for a model of %,d parameters: "
                    + "on more than one rank a checkpoint gathers the optimizer state of all parameters into one array, and %,d "
                    + "floats are more than a Java array holds (%,d); train on one rank or make the model smaller",
                    ranks, model.parameterCount(), model.parameterCount(), ARRAY_LIMIT));
        }
    }

    /**
     * The arrays only a Mixture-of-Experts model has: each stack of experts (E × F × C, one array) and
     * the routed rows of a micro-batch (B·T·K × F and × C).
     */
    private static void checkExperts(DeepSeekConfig model, int rows) {
        MoeConfig moe = model.moe();
        long stack = times(times(moe.experts(), moe.expertWidth()), model.trunk().width());
        if (stack > ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--experts %d × --expert-width %d × --width %d = %,d floats "
                    + "in one stack of experts, more than a Java array holds (%,d); the most experts of this width are %,d",
                    moe.experts(), moe.expertWidth(), model.trunk().width(), stack, ARRAY_LIMIT,
                    ARRAY_LIMIT / ((long) moe.expertWidth() * model.trunk().width())));
        }
        long routed = times(times(rows, model.trunk().contextLength()), moe.activeExperts());
        long widest = Math.max(moe.expertWidth(), model.trunk().width());
        if (times(routed, widest) > ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "%d sequences × context %d × --active-experts %d × %d = %,d "
                    + "floats of routed rows in one micro-batch, more than a Java array holds (%,d); lower --batch, --context or "
                    + "--active-experts", rows, model.trunk().contextLength(), moe.activeExperts(), widest, times(routed, widest),
                    ARRAY_LIMIT));
        }
    }

    /**
     * The widest activations of latent attention, which the trunk's grouped-query arrays do not
     * bound: queries (B·T × H·(Dn + Dr)) and the keys and values out of {@code kv_b_proj}
     * (B·T × H·(Dn + Dv)), each one array per micro-batch.
     */
    private static void checkLatentAttention(DeepSeekConfig model, int rows) {
        MlaConfig mla = model.mla();
        int heads = model.trunk().heads();
        int context = model.trunk().contextLength();
        long perToken = (long) heads * Math.max(mla.nopeHeadDim() + mla.ropeHeadDim(), mla.nopeHeadDim() + mla.valueHeadDim());
        long floats = times(times(rows, context), perToken);
        if (floats > ARRAY_LIMIT) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "%d sequences × context %d × %d heads × %d = %,d floats "
                    + "of latent-attention queries or keys and values in one micro-batch, more than a Java array holds (%,d); "
                    + "lower --batch or --context (at context %d a micro-batch holds at most %,d sequences)",
                    rows, context, heads, perToken / heads, floats, ARRAY_LIMIT, context, ARRAY_LIMIT / (context * perToken)));
        }
    }

    private static void checkArrays(LlamaConfig model, int batch, int ranks, Flags flags) {
        int rows = rowsPerRank(batch, ranks);
        ArrayKind blamedKind = null;
        Dimension blamed = null;
        double furthest = -1;
        for (ArrayKind kind : ArrayKind.values()) {
            if (model.arrayLength(kind, rows) <= ARRAY_LIMIT) {
                continue;
            }
            for (Dimension d : kind.factors()) {
                if (flags.flag(d) == null) {
                    continue;
                }
                double moved = (double) flagValue(model, d, batch) / flagValue(flags.baseline(), d, flags.defaultBatch());
                if (moved > furthest) {
                    furthest = moved;
                    blamed = d;
                    blamedKind = kind;
                }
            }
            if (blamedKind == null) {
                blamedKind = kind;
            }
        }
        if (blamedKind != null) {
            throw new IllegalArgumentException(tooLong(model, batch, ranks, rows, flags, blamedKind, blamed));
        }
    }

    private static String tooLong(LlamaConfig model, int batch, int ranks, int rows, Flags flags, ArrayKind failing, Dimension blamed) {
        if (blamed == null) {
            return String.format(Locale.ROOT, "%s need %s = %s = %,d %s in one array, more than a Java array holds (%,d)",
                    failing.description(), failing.formula(), factors(model, failing, rows), model.arrayLength(failing, rows),
                    elements(failing), ARRAY_LIMIT);
        }
        // The largest value of the blamed flag over every kind that depends on it; the kind that sets it is the one to show.
        ArrayKind binding = failing;
        long most = Long.MAX_VALUE;
        for (ArrayKind kind : ArrayKind.values()) {
            long fits = model.largestFitting(kind, blamed, rows, ARRAY_LIMIT);
            if (fits < most) {
                most = fits;
                binding = kind;
            }
        }
        String flag = flags.flag(blamed);
        boolean split = blamed == Dimension.BATCH && ranks > 1;
        long largest = split ? Math.min(Integer.MAX_VALUE, most * ranks) : most;
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT, "%s %d is too large: ", flag, flagValue(model, blamed, batch)));
        if (split) {
            s.append(String.format(Locale.ROOT, "split over %d ranks a micro-batch has %d sequences, and ", ranks, rows));
        }
        s.append(String.format(Locale.ROOT, "%s need %s = %s = %,d %s in one array, more than a Java array holds (%,d); ",
                binding.description(), binding.formula(), factors(model, binding, rows), model.arrayLength(binding, rows),
                elements(binding), ARRAY_LIMIT));
        List<String> others = new ArrayList<>();
        for (Dimension d : binding.factors().stream().distinct().toList()) {
            if (d != blamed) {
                others.add(describe(model, d, batch, flags));
            }
        }
        if (!others.isEmpty()) {
            s.append("with ").append(joined(others)).append(' ');
        }
        String where = split ? " on " + ranks + " ranks" : "";
        if (largest < 1) {
            s.append("no ").append(flag).append(" fits").append(where);
        } else {
            s.append("the largest ").append(flag).append(where).append(" is ").append(largest);
        }
        return s.toString();
    }

    /**
     * Refuses a run whose heap need, by a lower bound, exceeds what the JVM may use, saying how much
     * it needs, of what, the largest {@code --batch} that would fit, and how to raise the limit.
     *
     * @param needAt  the heap a run with a given global batch surely needs
     * @param batch   the run's {@code --batch}
     * @param maxHeap the most the JVM may use ({@link Runtime#maxMemory()}; {@link Long#MAX_VALUE} for no limit)
     * @param smaller the flags that shrink the run, for the message: "--batch, --context or the model size"
     * @throws IllegalArgumentException when {@code needAt.apply(batch)} exceeds {@code maxHeap}
     */
    static void checkHeap(IntFunction<Heap> needAt, int batch, long maxHeap, String smaller) {
        Heap need = needAt.apply(batch);
        if (maxHeap == Long.MAX_VALUE || need.total() <= maxHeap) {
            return;
        }
        int low = 0; // the largest batch known to fit (0: none)
        int high = batch; // known not to fit
        while (high - low > 1) {
            int mid = (int) (((long) low + high) >>> 1);
            if (needAt.apply(mid).total() <= maxHeap) {
                low = mid;
            } else {
                high = mid;
            }
        }
        List<String> parts = new ArrayList<>();
        for (Heap.Part p : need.parts()) {
            parts.add(p.what() + " " + bytes(p.bytes()));
        }
        String fits = low >= 1 ? "the largest --batch that fits is " + low : "even --batch 1 needs " + gib(needAt.apply(1).total());
        long suggestGib = (long) Math.ceil(need.total() * 1.25 / GIB);
        throw new IllegalArgumentException(String.format(Locale.ROOT, "this run needs at least %s of heap, more than the %s "
                        + "the JVM may use: %s; %s; raise the JVM's limit, e.g. MUON4J_JAVA_OPTS=-Xmx%dg (the ./muon4j launcher passes "
                        + "it to java), or lower %s", gib(need.total()), gib(maxHeap), joined(parts), fits, Math.max(1, suggestGib), smaller));
    }

    /**
     * A lower bound of the heap a run needs, by what holds it.
     *
     * @param parts what holds memory and how many bytes, in the order a message lists them
     */
    record Heap(List<Part> parts) {
        Heap {
            parts = List.copyOf(parts);
        }

        /**
         * One holder of memory.
         *
         * @param what  in words: "parameters and gradients", ...
         * @param bytes bytes, at least 0 ({@link Long#MAX_VALUE} when beyond a long)
         */
        record Part(String what, long bytes) {
            Part {
                if (bytes < 0) {
                    throw new IllegalArgumentException(what + ": bytes must be >= 0, got " + bytes);
                }
            }
        }

        /** The sum of the parts, saturating at {@link Long#MAX_VALUE}. */
        long total() {
            long sum = 0;
            for (Part p : parts) {
                sum = p.bytes() > Long.MAX_VALUE - sum ? Long.MAX_VALUE : sum + p.bytes();
            }
            return sum;
        }
    }

    /**
     * The heap one process of a training run surely holds: the values and gradients of its models,
     * its part of the optimizer state, and the forward and backward passes over its part of the batch.
     *
     * @param model     the model
     * @param optimizer AdamW keeps two moments per parameter; the Muon hybrid one momentum per hidden-matrix element,
     *                  two moments for the rest, and per rank a scratch copy of the largest hidden matrix
     * @param batch     the global batch
     * @param ranks     the ranks the batch and the optimizer state are split over
     * @param together  whether all ranks are threads of this process (each with its own model, together holding all
     *                  of the state and passes over the whole batch) rather than one rank per process (which holds
     *                  at least its ⌈1/ranks⌉ share of the state and a pass over ⌈batch / ranks⌉ sequences)
     * @return the parts
     */
    static Heap trainingHeap(ModelConfig model, OptimizerChoice optimizer, int batch, int ranks, boolean together) {
        long parameters = model.parameterCount();
        long hidden = model.hiddenMatrixParameterCount();
        boolean adamw = optimizer == OptimizerChoice.ADAMW;
        long moments = adamw ? times(2, parameters) : plus(hidden, times(2, parameters - hidden));
        long scratch = adamw ? 0 : model.largestHiddenMatrix();
        int models = together ? ranks : 1;
        long state = together ? plus(moments, times(ranks, scratch)) : plus(Math.ceilDiv(moments, ranks), scratch);
        int rows = together ? batch : rowsPerRank(batch, ranks);
        return new Heap(List.of(
                new Heap.Part(models == 1 ? "parameters and gradients" : "parameters and gradients of " + models + " ranks",
                        floats(times(2L * models, parameters))),
                new Heap.Part("optimizer state", floats(state)),
                new Heap.Part(String.format(Locale.ROOT, "activations of %d sequences of %d tokens", rows, model.contextLength()),
                        floats(model.trainingStepFloats(rows)))));
    }

    /** The most sequences one rank's micro-batch has: ⌈batch / ranks⌉. */
    static int rowsPerRank(int batch, int ranks) {
        if (batch < 1 || ranks < 1) {
            throw new IllegalArgumentException("batch and ranks must be >= 1, got " + batch + " and " + ranks);
        }
        return (int) (((long) batch + ranks - 1) / ranks);
    }

    /** Bytes of {@code n} floats, saturating. */
    static long floats(long n) {
        return times(Float.BYTES, n);
    }

    static long times(long a, long b) {
        return b != 0 && a > Long.MAX_VALUE / b ? Long.MAX_VALUE : a * b;
    }

    static long plus(long a, long b) {
        return b > Long.MAX_VALUE - a ? Long.MAX_VALUE : a + b;
    }

    /** The value a flag has: the global batch for BATCH, the model's size otherwise. */
    private static long flagValue(LlamaConfig model, Dimension d, int batch) {
        return model.dimension(d, batch);
    }

    /** "16 × 4 × 100000²": the kind's factors at these sizes. */
    private static String factors(LlamaConfig model, ArrayKind kind, int rows) {
        StringBuilder s = new StringBuilder();
        for (Dimension d : kind.factors().stream().distinct().toList()) {
            int p = kind.power(d);
            s.append(s.isEmpty() ? "" : " × ").append(model.dimension(d, rows)).append(p == 1 ? "" : p == 2 ? "²" : "^" + p);
        }
        return s.toString();
    }

    /** "--context 128", "context 256" where the command has no flag for it, or "a vocabulary of 256". */
    private static String describe(LlamaConfig model, Dimension d, int batch, Flags flags) {
        long value = model.dimension(d, batch);
        if (d == Dimension.VOCABULARY) {
            return "a vocabulary of " + value;
        }
        String flag = flags.flag(d);
        return flag != null ? flag + " " + value : d.label() + " " + value;
    }

    private static String elements(ArrayKind kind) {
        return kind == ArrayKind.TOKENS ? "ints" : "floats";
    }

    private static String joined(List<String> items) {
        if (items.size() <= 1) {
            return String.join("", items);
        }
        return String.join(", ", items.subList(0, items.size() - 1)) + " and " + items.getLast();
    }

    /** Bytes in GiB, MiB or KiB, whichever is the largest below them. */
    private static String bytes(long bytes) {
        if (bytes >= GIB) {
            return gib(bytes);
        }
        return bytes >= 1 << 20 ? String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1 << 20))
                : String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
    }

    private static String gib(long bytes) {
        double g = bytes / GIB;
        return String.format(Locale.ROOT, g < 1 ? "%.2f GiB" : "%.1f GiB", g);
    }
}
