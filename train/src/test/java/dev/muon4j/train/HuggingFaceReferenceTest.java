package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LanguageModel;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.tensor.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An independent check of muon4j's models: a tiny model is trained, exported, and its logits computed
 * again by {@code scripts/hf/reference_forward.py}, a Llama and DeepseekV3 forward in plain PyTorch written
 * from Hugging Face's modeling conventions that reads only the exported config.json and model.safetensors.
 * The two must agree within {@value #TOLERANCE} (largest absolute difference of any logit).
 *
 * <p>Needs {@code python3} with PyTorch ({@code /usr/bin/python3} with Debian's python3-torch, or the
 * interpreter in {@code MUON4J_TORCH_PYTHON}). Without it the tests are skipped with a message, unless
 * {@code MUON4J_REQUIRE_TORCH=1} (set by {@code .ci/run} where the install worked), which makes them fail.
 */
class HuggingFaceReferenceTest {
    static final double TOLERANCE = 1e-4;
    static final int T = 16;
    static final Path SCRIPT = Path.of("..", "scripts", "hf", "reference_forward.py");
    static String python;

    @TempDir
    Path tmp;

    @BeforeAll
    static void findTorch() throws Exception {
        String env = System.getenv("MUON4J_TORCH_PYTHON");
        python = env != null && !env.isBlank() ? env : "/usr/bin/python3";
        String problem = null;
        try {
            Process p = new ProcessBuilder(python, "-c", "import torch; print(torch.__version__)").redirectErrorStream(true).start();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                problem = python + " cannot import torch: " + output.lines().reduce((a, b) -> b).orElse("");
            }
        } catch (IOException e) {
            problem = python + " does not run: " + e.getMessage();
        }
        if (problem != null && "1".equals(System.getenv("MUON4J_REQUIRE_TORCH"))) {
            fail(problem + " (MUON4J_REQUIRE_TORCH=1)");
        }
        if (problem != null) {
            System.out.println("HuggingFaceReferenceTest skipped: " + problem);
        }
        assumeTrue(problem == null, () -> "skipped: no PyTorch for the reference forward");
    }

    @Test
    void aDenseModelsLogitsAreLlamasWithGroupedQueryAttentionAndAnUntiedHead() throws Exception {
        check("llama", new LlamaConfig(256, 48, 2, 4, 2, 96, T, false, 10000, 1e-5, 0.05), 30);
    }

    @Test
    void aDenseModelWithATiedHead() throws Exception {
        check("llama-tied", new LlamaConfig(256, 32, 2, 2, 2, 64, T, true, 500000, 1e-6, 0.05), 20);
    }

    @Test
    void aMixtureOfExpertsModelsLogitsAreDeepseekV3s() throws Exception {
        check("deepseek", new DeepSeekConfig(new LlamaConfig(256, 32, 3, 2, 2, 64, T, false, 10000, 1e-5, 0.1),
                new MoeConfig(6, 2, 16, 2, 2.446, 1), new MlaConfig(0, 8, 16, 8, 12)), 20);
    }

    @Test
    void aMixtureOfExpertsModelWithAQueryRankAndNoSharedExperts() throws Exception {
        check("deepseek-q", new DeepSeekConfig(new LlamaConfig(256, 32, 2, 4, 4, 64, T, true, 10000, 1e-5, 0.1),
                new MoeConfig(4, 3, 16, 0, 1.5, 0), new MlaConfig(12, 8, 8, 4, 8)), 20);
    }

    /** Trains {@code model} for {@code steps}, exports it, and compares muon4j's logits with the reference's. */
    private void check(String name, ModelConfig model, int steps) throws Exception {
        Path run = tmp.resolve(name);
        TrainConfig config = TrainerTest.config(OptimizerChoice.MUON, 1e-2, steps, 1, 7, 0).withRouterBiasRate(0.01);
        HuggingFaceExportTest.train(model, config, run, null);
        Path exported = tmp.resolve(name + "-hf");
        HuggingFaceExport.export(run, exported, DType.F32, false, s -> { });

        InitialWeights trained = InitialWeights.read(run, s -> { });
        LanguageModel m = model.create();
        CheckpointStore.restoreWeights(trained.describe(), trained.weights(), Trainer.savedTensors(m));
        boolean biased = false;
        for (var b : m.buffers()) {
            for (float v : b.value()) {
                biased |= v != 0;
            }
        }
        assertTrue(m.buffers().isEmpty() || biased, "the routers' choice biases have moved, so the check covers them");

        int batch = 3;
        SplittableRandom random = new SplittableRandom(11);
        int[] tokens = new int[batch * T];
        byte[] text = TrainerTest.SENTENCE.repeat(4).getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = i < T ? text[i] & 0xFF : random.nextInt(256); // one sequence the model knows, two random ones
        }
        float[] ours;
        try (Backend backend = new VectorBackend(1); Graph g = new Graph(backend)) {
            g.setRecording(false);
            Tensor logits = m.forward(g, tokens, batch, T);
            ours = logits.data().clone();
        }

        List<List<Integer>> sequences = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            List<Integer> s = new ArrayList<>();
            for (int t = 0; t < T; t++) {
                s.add(tokens[b * T + t]);
            }
            sequences.add(s);
        }
        Path tokensFile = tmp.resolve(name + "-tokens.json");
        Files.write(tokensFile, JsonCodec.prettyFile(Map.of("tokens", sequences)));
        Path out = tmp.resolve(name + "-logits.f32");
        Process p = new ProcessBuilder(python, SCRIPT.toString(), exported.toString(), tokensFile.toString(), out.toString())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "the reference finished");
        assertEquals(0, p.exitValue(), output);
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(ours.length * 4, bytes.capacity(), "batch × time × vocabulary logits");
        double maxDiff = 0;
        double maxLogit = 0;
        for (int i = 0; i < ours.length; i++) {
            float theirs = bytes.getFloat(i * 4);
            maxDiff = Math.max(maxDiff, Math.abs(theirs - ours[i]));
            maxLogit = Math.max(maxLogit, Math.abs(ours[i]));
        }
        System.out.printf("%s: %s; largest |logit| %.3f, largest difference from the PyTorch reference %.3g (tolerance %.0e)%n",
                name, output.strip(), maxLogit, maxDiff, TOLERANCE);
        assertTrue(maxLogit > 1, "a trained model's logits are not all near zero: " + maxLogit);
        assertTrue(maxDiff <= TOLERANCE, name + ": the logits differ by up to " + maxDiff + " from the reference");
    }
}
