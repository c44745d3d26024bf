package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.NewtonSchulzConfig.Method;
import org.junit.jupiter.api.Test;

/**
 * The Newton–Schulz method as a training setting: STANDARD unless asked, carried by every {@code with}
 * method, recorded in the config map and checked on resume, handed to the Muon rule of each variant, and
 * refused with torch's bfloat16 Newton–Schulz.
 */
class NsMethodConfigTest {
    /** A Muon training config with every setting at its default: the base both Newton–Schulz setting tests vary. */
    static TrainConfig config() {
        return new TrainConfig(OptimizerChoice.MUON, 3e-3, 1.2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2, 10, 0.1, 4, 1, 1.0,
                1, 5, 1, 0, 3);
    }

    @Test
    void standardByDefaultAndCarriedByEveryWith() {
        TrainConfig c = config();
        assertEquals(Method.STANDARD, c.nsMethod());
        assertEquals("STANDARD", c.toMap().get("ns_method"));
        TrainConfig gram = c.withNsMethod(Method.GRAM);
        assertEquals("GRAM", gram.toMap().get("ns_method"));
        assertEquals(Method.GRAM, gram.withSteps(5).withOptimizer(OptimizerChoice.ADAMW).withMuon(MuonVariant.NORMUON, true, false)
                .withQkClip(50).nsMethod());
        assertTrue(Trainer.RESUME_SETTINGS.contains("ns_method"));
    }

    @Test
    void everyVariantButTorchTakesTheGramMethod() {
        for (MuonVariant variant : MuonVariant.values()) {
            if (variant == MuonVariant.TORCH) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> variant.config(0.02, 0.95, 0.1, Method.GRAM));
                assertTrue(e.getMessage().contains("torch"), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> config().withNsMethod(Method.GRAM).withMuon(variant, false, false));
                assertThrows(IllegalArgumentException.class, () -> config().withMuon(variant, false, false).withNsMethod(Method.GRAM));
                continue;
            }
            NewtonSchulzConfig ns = variant.config(0.02, 0.95, 0.1, Method.GRAM).newtonSchulz();
            assertEquals(Method.GRAM, ns.method(), variant.name());
            assertEquals(Method.STANDARD, variant.config(0.02, 0.95, 0.1).newtonSchulz().method(), variant.name());
        }
    }
}
