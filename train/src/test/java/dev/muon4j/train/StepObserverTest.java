package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.LanguageModel;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.Route;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The trainer's optional {@link StepObserver}: called on the steps it asks for, in order around the
 * optimizer step, its fields written into those steps' metrics lines only; a run with it trains
 * exactly as one without; a field named like one of the trainer's is refused; a resumed run starts it
 * again with the restored weights.
 */
class StepObserverTest {
    static Backend backend;
    static TokenDataset data;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        data = TokenDataset.of(Corpus.ofText("sentence", "Sphinx of black quartz, judge my vow. ".repeat(60)), new ByteTokenizer(), 0.1, 16);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static final LlamaConfig MODEL = new LlamaConfig(256, 32, 2, 2, 2, 64, 16, false, 10000, 1e-5, 0.02);

    static TrainConfig config(long steps) {
        return new TrainConfig(OptimizerChoice.MUON, 1e-2, 2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2, steps, 0.1,
                8, 1, 1.0, 3, 4, 2, 4, 2);
    }

    /** Records every call; measures the first hidden matrix's largest change and the layer-output RMS. */
    static final class Recording implements StepObserver {
        final List<String> calls = new ArrayList<>();
        final long every;
        List<HybridOptimizer.Assignment> assignments;
        float[] before;
        double[] outputs;
        String field = "largest_change";

        Recording(long every) {
            this.every = every;
        }

        @Override
        public void start(LanguageModel model, List<HybridOptimizer.Assignment> assignments) {
            calls.add("start");
            this.assignments = assignments;
        }

        @Override
        public boolean observes(long step) {
            return step % every == 0;
        }

        @Override
        public void beforeForward(long step, LanguageModel model) {
            calls.add("beforeForward " + step);
            model.recordLayerOutputs(true);
        }

        @Override
        public void beforeUpdate(long step, LanguageModel model) {
            calls.add("beforeUpdate " + step);
            outputs = model.layerOutputRms();
            model.recordLayerOutputs(false);
            before = model.parameters().get(2).value().clone();
        }

        @Override
        public Map<String, Object> afterUpdate(long step, double lrFactor, LanguageModel model) {
            calls.add("afterUpdate " + step);
            float[] after = model.parameters().get(2).value();
            double largest = 0;
            for (int i = 0; i < after.length; i++) {
                largest = Math.max(largest, Math.abs(after[i] - before[i]));
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put(field, largest);
            m.put("lr_factor", lrFactor);
            m.put("layers", List.of(outputs[0], outputs[1]));
            return m;
        }
    }

    private static List<Map<String, Object>> lines(Path dir) throws IOException {
        List<Map<String, Object>> out = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            out.add(JsonCodec.parseObject(line));
        }
        return out;
    }

    @Test
    void observedStepsCarryTheFieldsAndTheRunIsUnchanged() throws IOException {
        Recording r = new Recording(3);
        Trainer.Result plain = new Trainer(backend, MODEL, config(8), data, tmp.resolve("plain"), m -> { }, null).run(false);
        Trainer.Result seen = new Trainer(backend, MODEL, config(8), data, tmp.resolve("seen"), m -> { }, null)
                .run(RunOptions.fresh().withObserver(r));
        assertEquals(List.of("start", "beforeForward 3", "beforeUpdate 3", "afterUpdate 3", "beforeForward 6", "beforeUpdate 6",
                "afterUpdate 6"), r.calls);
        assertEquals(MODEL.parameterCount(), r.assignments.stream().mapToLong(a -> a.parameter().size()).sum(), "every parameter");
        assertTrue(r.assignments.stream().anyMatch(a -> a.route() == Route.MUON && a.learningRate() == 2e-2), "Muon's rate");
        assertTrue(r.assignments.stream().anyMatch(a -> a.route() == Route.ADAMW && a.learningRate() == 1e-2), "AdamW's rate");
        for (int i = 0; i < plain.steps().size(); i++) {
            assertEquals(plain.steps().get(i).loss(), seen.steps().get(i).loss(), "loss of step " + (i + 1) + " with an observer");
        }
        Map<Long, Map<String, Object>> steps = new HashMap<>();
        for (Map<String, Object> line : lines(tmp.resolve("seen"))) {
            if (line.containsKey("loss")) {
                steps.put(((Number) line.get("step")).longValue(), line);
            }
        }
        assertEquals(8, steps.size());
        for (long s = 1; s <= 8; s++) {
            Map<String, Object> line = steps.get(s);
            assertEquals(s % 3 == 0, line.containsKey("largest_change"), "step " + s + ": " + line);
            if (s % 3 == 0) {
                assertTrue(((Number) line.get("largest_change")).doubleValue() > 0, line.toString());
                assertEquals(((Number) line.get("lr")).doubleValue() / 1e-2, ((Number) line.get("lr_factor")).doubleValue(), 1e-12);
                List<?> layers = (List<?>) line.get("layers");
                assertTrue(((Number) layers.get(0)).doubleValue() > 0 && ((Number) layers.get(1)).doubleValue() > 0, line.toString());
                assertTrue(line.containsKey("grad_norm") && line.containsKey("seconds"), "the trainer's own fields stay: " + line);
            }
        }
        for (Map<String, Object> line : lines(tmp.resolve("plain"))) {
            assertFalse(line.containsKey("largest_change"), "no observer, no field: " + line);
        }
    }

    @Test
    void aFieldNamedLikeTheTrainersIsRefused() {
        Recording r = new Recording(1);
        r.field = "loss";
        Trainer t = new Trainer(backend, MODEL, config(2), data, tmp.resolve("clash"), m -> { }, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.run(RunOptions.fresh().withObserver(r)));
        assertTrue(e.getMessage().contains("observed field 'loss' of step 1") && e.getMessage().contains("trainer's own"), e.getMessage());
    }

    @Test
    void aResumedRunStartsTheObserverAgainAndMeasuresTheRestOfTheSteps() throws IOException {
        Trainer.Result first = new Trainer(backend, MODEL, config(8), data, tmp.resolve("resumed"), m -> { }, null)
                .run(RunOptions.fresh().withStopAfter(4).withObserver(new Recording(2)));
        assertEquals(4, first.steps().size());
        Recording r = new Recording(2);
        new Trainer(backend, MODEL, config(8), data, tmp.resolve("resumed"), m -> { }, null)
                .run(RunOptions.resume().withObserver(r));
        assertEquals(List.of("start", "beforeForward 6", "beforeUpdate 6", "afterUpdate 6", "beforeForward 8", "beforeUpdate 8",
                "afterUpdate 8"), r.calls);
        long measured = lines(tmp.resolve("resumed")).stream().filter(l -> l.containsKey("largest_change")).count();
        assertEquals(4, measured, "steps 2, 4 (first sitting), 6, 8 (second)");
    }
}
