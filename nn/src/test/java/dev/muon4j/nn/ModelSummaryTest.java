package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The model's short table: every row of the dense and the Mixture-of-Experts shapes, their numbers as
 * the config has them, aligned values, and no line wider than 80 columns even for a large model.
 */
class ModelSummaryTest {
    @Test
    void denseAndMixtureOfExpertsTablesFitEightyColumns() {
        LlamaConfig dense = new LlamaConfig(50257, 1536, 48, 24, 8, 6144, 4096, false, 500000, 1e-5, 0.02);
        DeepSeekConfig moe = new DeepSeekConfig(dense, new MoeConfig(256, 8, 2048, 1, 2.5, 3), new MlaConfig(1536, 512, 128, 64, 128));
        for (ModelConfig c : List.of(dense, moe, dense.withVocabSize(256))) {
            String table = c.table();
            List<String> lines = table.lines().toList();
            assertEquals("model:", lines.getFirst());
            assertEquals(c.summary().size() + 1, lines.size(), table);
            int column = lines.get(1).indexOf(c.summary().getFirst().getValue());
            for (int i = 1; i < lines.size(); i++) {
                String line = lines.get(i);
                assertTrue(line.length() <= 80, line.length() + ": " + line);
                assertEquals(column, line.indexOf(c.summary().get(i - 1).getValue()), "values aligned: " + table);
            }
        }
        String d = dense.table();
        assertTrue(d.contains(String.format(java.util.Locale.ROOT, "%,d", dense.parameterCount())) && d.contains("48, width 1536")
                && d.contains("24 heads of 64 (8 key/value)") && d.contains("SwiGLU 6144") && d.contains("4096 tokens, vocabulary 50257"), d);
        String m = moe.table();
        assertTrue(m.contains("then 256 experts of 2048") && m.contains("8 of 256 + 1 shared") && m.contains("first 3 SwiGLU 6144")
                && m.contains("latent, 24 heads (R_kv 512, R_q 1536") && m.contains("active per token"), m);
    }
}
