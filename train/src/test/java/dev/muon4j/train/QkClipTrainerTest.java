package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.Batch;
import dev.muon4j.data.BatchSampler;
import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.DecoderModel;
import dev.muon4j.optim.Parameter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * QK-clip in the trainer: after the optimizer step the query and key rows of the heads whose logits
 * grew past τ are scaled, exactly as {@link dev.muon4j.optim.QkClip} scales the unclipped step's
 * weights with the step's largest logits (over its micro-batches), and nothing else changes; with
 * the update itself zero the clipped weights bring every head's logits on the step's batch to at
 * most τ; metrics.jsonl reports the largest logit and the clipped heads; data-parallel ranks agree
 * on S, track one process and hold bit-identical parameters.
 */
class QkClipTrainerTest {
    static final int T = DataParallelTrainerTest.T;
    /** Initialised with std 0.3: the attention logits start at 7 to 12. */
    static final LlamaConfig MULTI_HEAD = new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.3);
    /** Four query heads sharing two key heads. */
    static final LlamaConfig GROUPED = new LlamaConfig(256, 32, 2, 4, 2, 64, T, false, 10000, 1e-5, 0.3);

    static Backend backend;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    /**
     * τ halfway between the smallest and the largest of layer 0's key-group maxima of the first step:
     * in layer 0 one group at least is clipped and one is not.
     */
    static double tau(LlamaConfig model) {
        float[] s = firstStepMaxLogits(model, config(1, 0, 0, 1), initial(model, config(1, 0, 0, 1)));
        int group = model.heads() / model.kvHeads();
        double lowest = Double.POSITIVE_INFINITY;
        double highest = Double.NEGATIVE_INFINITY;
        for (int g = 0; g < model.kvHeads(); g++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                max = Math.max(max, s[h]);
            }
            lowest = Math.min(lowest, max);
            highest = Math.max(highest, max);
        }
        assertTrue(lowest > 1 && highest > lowest, "layer 0's logits: " + java.util.Arrays.toString(s));
        return (lowest + highest) / 2;
    }

    /** Batch 2, accumulation 2 (so S is the maximum over two micro-batches), Muon at a high rate. */
    static TrainConfig config(long steps, double lr, double weightDecay, double tau) {
        return new TrainConfig(OptimizerChoice.MUON, lr, 4 * lr, weightDecay, 0.9, 0.95, 0.95, ScheduleKind.CONSTANT, 0, steps, 0.1,
                2, 2, 0, 7, 100, 1, 0, 1).withQkClip(tau);
    }

    static Map<String, float[]> train(LlamaConfig model, TrainConfig c, Path dir) throws Exception {
        Map<String, float[]> out = new TreeMap<>();
        new Trainer(backend, model, c, DataParallelTrainerTest.DATA, dir, s -> { }, null)
                .observeFinalParameters(ps -> ps.forEach(p -> out.put(p.name(), p.value().clone())))
                .run(false);
        return out;
    }

    /** A model holding {@code weights}. */
    static DecoderModel model(LlamaConfig config, Map<String, float[]> weights) {
        DecoderModel m = new DecoderModel(config);
        for (Parameter p : m.parameters()) {
            System.arraycopy(weights.get(p.name()), 0, p.value(), 0, p.size());
        }
        return m;
    }

    /** The initial weights of a run with config c. */
    static Map<String, float[]> initial(LlamaConfig config, TrainConfig c) {
        DecoderModel m = new DecoderModel(config);
        m.initialize(c.seed());
        Map<String, float[]> out = new TreeMap<>();
        m.parameters().forEach(p -> out.put(p.name(), p.value().clone()));
        return out;
    }

    /** The largest logits of the weights over the micro-batches of the first step, as the trainer samples them. */
    static float[] firstStepMaxLogits(LlamaConfig config, TrainConfig c, Map<String, float[]> weights) {
        DecoderModel m = model(config, weights);
        BatchSampler sampler = DataParallelTrainerTest.DATA.trainSampler(T, c.batchSize(), c.seed());
        m.resetMaxLogits();
        try (Graph g = new Graph(backend)) {
            for (int micro = 0; micro < c.accumulation(); micro++) {
                Batch b = sampler.batch(micro, 0, 1);
                m.forward(g, b.inputs(), b.batch(), b.time());
                g.reset();
            }
        }
        return m.maxLogits();
    }

    static String name(int layer, String proj) {
        return "model.layers." + layer + ".self_attn." + proj + ".weight";
    }

    /** Query heads of layer {@code layer} whose key group's largest S is over τ. */
    static boolean[] clippedHeads(LlamaConfig config, float[] s, int layer, double tau) {
        int heads = config.heads();
        int group = heads / config.kvHeads();
        boolean[] clipped = new boolean[heads];
        for (int g = 0; g < config.kvHeads(); g++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                max = Math.max(max, s[layer * heads + h]);
            }
            for (int h = g * group; h < (g + 1) * group; h++) {
                clipped[h] = max > tau;
            }
        }
        return clipped;
    }

    enum Shape {
        MULTI_HEAD, GROUPED;

        LlamaConfig config() {
            return this == MULTI_HEAD ? QkClipTrainerTest.MULTI_HEAD : QkClipTrainerTest.GROUPED;
        }
    }

    @ParameterizedTest
    @EnumSource(Shape.class)
    void theClippedStepIsTheUnclippedStepScaledWhereLogitsPassedTau(Shape shape) throws Exception {
        LlamaConfig model = shape.config();
        double tau = tau(model);
        TrainConfig on = config(1, 2e-2, 0.1, tau);
        Map<String, float[]> unclipped = train(model, on.withQkClip(0), tmp.resolve("off"));
        Map<String, float[]> clipped = train(model, on, tmp.resolve("on"));
        float[] s = firstStepMaxLogits(model, on, initial(model, on));

        int heads = model.heads();
        int group = heads / model.kvHeads();
        int block = model.headDim() * model.width();
        int scaledHeads = 0;
        int underTau = 0;
        for (String name : unclipped.keySet()) {
            float[] a = unclipped.get(name);
            float[] b = clipped.get(name);
            boolean query = name.endsWith("q_proj.weight");
            boolean key = name.endsWith("k_proj.weight");
            if (!query && !key) {
                assertTrue(java.util.Arrays.equals(a, b), name + " is not touched by QK-clip");
                continue;
            }
            int layer = Integer.parseInt(name.split("\\.")[2]);
            boolean[] over = clippedHeads(model, s, layer, tau);
            int rowsOwners = query ? heads : model.kvHeads();
            for (int h = 0; h < rowsOwners; h++) {
                int queryHead = query ? h : h * group;
                float groupMax = Float.NEGATIVE_INFINITY;
                for (int x = queryHead / group * group; x < (queryHead / group + 1) * group; x++) {
                    groupMax = Math.max(groupMax, s[layer * heads + x]);
                }
                double factor = Math.sqrt(tau / (double) groupMax);
                if (query) {
                    scaledHeads += over[h] ? 1 : 0;
                    underTau += s[layer * heads + h] <= tau ? 1 : 0;
                }
                for (int i = h * block; i < (h + 1) * block; i++) {
                    if (over[queryHead]) {
                        assertEquals((float) (a[i] * factor), b[i], 0, name + " head " + h + " element " + i);
                    } else {
                        assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]),
                                name + " head " + h + " (S = " + s[layer * heads + h] + " <= τ) must be bit-identical");
                    }
                }
            }
        }
        assertTrue(scaledHeads > 0, "no head passed τ: " + java.util.Arrays.toString(s));
        assertTrue(underTau > 0, "every head passed τ: " + java.util.Arrays.toString(s));

        // metrics.jsonl: the step line says what the clip saw and did; without QK-clip it says nothing.
        Map<String, Object> line = JsonCodec.parseObject(Files.readAllLines(tmp.resolve("on/metrics.jsonl")).getFirst());
        float largest = Float.NEGATIVE_INFINITY;
        for (float v : s) {
            largest = Math.max(largest, v);
        }
        assertEquals((double) largest, ((Number) line.get("max_logit")).doubleValue(), 0, line.toString());
        assertEquals(scaledHeads, ((Number) line.get("clipped_heads")).intValue(), line.toString());
        Map<String, Object> offLine = JsonCodec.parseObject(Files.readAllLines(tmp.resolve("off/metrics.jsonl")).getFirst());
        assertFalse(offLine.containsKey("max_logit") || offLine.containsKey("clipped_heads"), offLine.toString());
    }

    @ParameterizedTest
    @EnumSource(Shape.class)
    void withTheUpdateZeroTheClippedWeightsBringEveryHeadToAtMostTau(Shape shape) throws Exception {
        LlamaConfig model = shape.config();
        // Learning rates 0 and no decay: the optimizer step leaves every weight as it was, so only the clip moves them.
        double tau = tau(model);
        TrainConfig on = config(1, 0, 0, tau);
        Map<String, float[]> start = initial(model, on);
        Map<String, float[]> clipped = train(model, on, tmp.resolve("on"));
        float[] before = firstStepMaxLogits(model, on, start);
        float[] after = firstStepMaxLogits(model, on, clipped);
        int heads = model.heads();
        int group = heads / model.kvHeads();
        // Layer 0's logits depend on layer 0's weights alone; a later layer's input changes with the clip of the layers before it.
        boolean[] over = clippedHeads(model, before, 0, tau);
        int clippedGroups = 0;
        for (int g = 0; g < model.kvHeads(); g++) {
            float groupMax = Float.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                assertTrue(after[h] <= tau * (1 + 1e-5), "head " + h + ": " + after[h] + " > τ = " + tau + " after the clipped step");
                if (!over[h]) {
                    assertEquals(before[h], after[h], 0, "head " + h + " was under τ: its logits are the very same");
                }
                groupMax = Math.max(groupMax, after[h]);
            }
            if (over[g * group]) {
                clippedGroups++;
                assertEquals(tau, groupMax, 1e-5 * tau, "key group " + g + "'s largest logit lands on τ");
            }
        }
        assertTrue(clippedGroups > 0, "no group of layer 0 passed τ: " + java.util.Arrays.toString(before));
        for (int layer = 0; layer < model.layers(); layer++) {
            boolean[] overHere = clippedHeads(model, before, layer, tau);
            float[] q0 = start.get(name(layer, "q_proj"));
            float[] q1 = clipped.get(name(layer, "q_proj"));
            int block = model.headDim() * model.width();
            for (int h = 0; h < heads; h++) {
                if (!overHere[h]) {
                    assertTrue(java.util.Arrays.equals(q0, h * block, (h + 1) * block, q1, h * block, (h + 1) * block),
                            "layer " + layer + " head " + h + " is under τ and must keep its weights");
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(ShardedOptimizer.Mode.class)
    void twoRanksTrackOneProcessAndHoldBitIdenticalParameters(ShardedOptimizer.Mode mode) throws Exception {
        // The data-parallel test model (std 0.1: logits near 1, so τ = 0.5 clips) over 4 steps.
        LlamaConfig model = DataParallelTrainerTest.MODEL;
        TrainConfig c = DataParallelTrainerTest.config(OptimizerChoice.MUON, 4, 4, 1).withQkClip(0.5);
        Trainer.Result one;
        try (Backend b = new VectorBackend(1)) {
            one = new Trainer(b, model, c, DataParallelTrainerTest.DATA, tmp.resolve("one"), s -> { }, null).run(false);
        }
        @SuppressWarnings("unchecked")
        Map<String, float[]>[] perRank = new Map[2];
        List<Trainer.Result> many = LocalRanks.run(2, Duration.ofSeconds(60), comm -> {
            try (Backend b = new VectorBackend(1)) {
                Map<String, float[]> mine = new TreeMap<>();
                Trainer.Result r = new Trainer(b, model, c, DataParallelTrainerTest.DATA, tmp.resolve("two"), s -> { }, null,
                        new Trainer.DataParallel(comm, mode))
                        .observeFinalParameters(ps -> ps.forEach(p -> mine.put(p.name(), p.value().clone())))
                        .run(false);
                perRank[comm.rank()] = mine;
                return r;
            }
        });
        for (String name : perRank[0].keySet()) {
            assertTrue(java.util.Arrays.equals(perRank[0].get(name), perRank[1].get(name)), name + " differs between the ranks");
        }
        DataParallelTrainerTest.assertClose(DataParallelTrainerTest.weights(tmp.resolve("one")),
                DataParallelTrainerTest.weights(tmp.resolve("two")), 2e-5, "2 ranks " + mode + " with QK-clip");
        int clipped = 0;
        for (Trainer.Result r : many) {
            for (int s = 0; s < one.steps().size(); s++) {
                Trainer.QkClipPoint want = one.steps().get(s).qkClip();
                Trainer.QkClipPoint got = r.steps().get(s).qkClip();
                assertNotNull(got);
                assertEquals(want.maxLogit(), got.maxLogit(), 1e-4 * Math.abs(want.maxLogit()), "max logit of step " + (s + 1));
                assertEquals(want.clippedHeads(), got.clippedHeads(), "clipped heads of step " + (s + 1));
                assertEquals(many.getFirst().steps().get(s).qkClip(), got, "the ranks agree on step " + (s + 1));
                clipped += got.clippedHeads();
            }
        }
        assertTrue(clipped > 0, "QK-clip never clipped: " + one.steps());
        // And the clip mattered: without it the run ends elsewhere.
        DataParallelTrainerTest.single(c.withQkClip(0), tmp.resolve("off"));
        assertThrows(AssertionError.class, () -> DataParallelTrainerTest.assertClose(DataParallelTrainerTest.weights(tmp.resolve("one")),
                DataParallelTrainerTest.weights(tmp.resolve("off")), 2e-5, "with and without QK-clip"));
    }

    @Test
    void theThresholdIsASettingOfTheRun() throws Exception {
        TrainConfig c = config(2, 1e-2, 0.1, 5);
        assertEquals(5.0, c.toMap().get("qk_clip_threshold"));
        assertTrue(Trainer.RESUME_SETTINGS.contains("qk_clip_threshold"));
        assertEquals(0.0, DataParallelTrainerTest.config(OptimizerChoice.MUON, 2, 2, 1).qkClipThreshold(), "off unless asked");
        assertFalse(c.withQkClip(0).qkClip());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.withQkClip(-1));
        assertTrue(e.getMessage().contains("QK-clip threshold") && e.getMessage().contains("-1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> c.withQkClip(Double.NaN));
        assertEquals(5, c.withSteps(5).withOptimizer(OptimizerChoice.ADAMW).withMuon(MuonVariant.MOONLIGHT, true, false)
                .qkClipThreshold(), "the with-methods keep τ");

        // A run checkpointed with τ resumes only with the same τ, unless the change is allowed.
        Path dir = tmp.resolve("run");
        new Trainer(backend, MULTI_HEAD, c, DataParallelTrainerTest.DATA, dir, s -> { }, null).run(false, 1);
        ChangedSettingsException refused = assertThrows(ChangedSettingsException.class, () ->
                new Trainer(backend, MULTI_HEAD, c.withQkClip(0), DataParallelTrainerTest.DATA, dir, s -> { }, null).run(true));
        assertEquals("qk_clip_threshold", refused.changes().getFirst().setting(), refused.getMessage());
        Trainer.Result resumed = new Trainer(backend, MULTI_HEAD, c.withQkClip(0), DataParallelTrainerTest.DATA, dir, s -> { }, null)
                .run(RunOptions.resume().withAllowedChanges(java.util.Set.of("qk_clip_threshold")));
        assertEquals(1, resumed.steps().size());
        assertNull(resumed.steps().getFirst().qkClip());
    }
}
