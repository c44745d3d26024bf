package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.NewtonSchulzConfig.Method;
import dev.muon4j.tensor.DType;
import org.junit.jupiter.api.Test;

/**
 * The precision of Muon's Newton–Schulz as a training setting: the variant's own unless asked (F32, BF16 for
 * torch's), carried by every {@code with} method, recorded in the config map and checked on resume, handed to
 * the Muon settings, refused where it cannot apply (torch's arithmetic in F32, the Gram method in BF16).
 */
class NsPrecisionConfigTest {
    private static TrainConfig config() {
        return NsMethodConfigTest.config();
    }

    @Test
    void theVariantsOwnUnlessAskedAndCarriedByEveryWith() {
        TrainConfig c = config();
        assertEquals(DType.F32, c.nsPrecision());
        assertEquals("F32", c.toMap().get("ns_precision"));
        TrainConfig bf16 = c.withNsPrecision(DType.BF16);
        assertEquals("BF16", bf16.toMap().get("ns_precision"));
        assertEquals(DType.BF16, bf16.withSteps(5).withOptimizer(OptimizerChoice.ADAMW).withQkClip(50).withRouterBiasRate(0.01)
                .nsPrecision());
        assertEquals(DType.BF16, c.withMuon(MuonVariant.TORCH, false, false).nsPrecision(), "torch's variant is bfloat16");
        assertEquals(DType.F32, bf16.withMuon(MuonVariant.KELLER, false, false).nsPrecision(), "a new variant brings its own");
        assertTrue(Trainer.RESUME_SETTINGS.contains("ns_precision"));
    }

    @Test
    void handedToTheMuonSettings() {
        for (MuonVariant variant : MuonVariant.values()) {
            NewtonSchulzConfig ns = variant.config(0.02, 0.95, 0.1, Method.STANDARD, DType.BF16).newtonSchulz();
            assertEquals(DType.BF16, ns.precision(), variant.name());
            if (variant == MuonVariant.TORCH) {
                assertEquals(NewtonSchulzConfig.Normalization.TORCH_BF16, ns.normalization());
            } else {
                assertEquals(NewtonSchulzConfig.Normalization.FROBENIUS_PLUS_EPS, ns.normalization(), variant.name());
                assertEquals(DType.F32, variant.config(0.02, 0.95, 0.1).newtonSchulz().precision(), variant.name());
            }
        }
        try (var backend = dev.muon4j.backend.Backends.openBundled(1)) {
            var settings = Trainer.settings(backend, config().withNsPrecision(DType.BF16), java.util.List.of());
            assertEquals(DType.BF16, settings.muonConfig().newtonSchulz().precision());
        }
    }

    @Test
    void refusedWhereItCannotApply() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> config().withMuon(MuonVariant.TORCH, false, false).withNsPrecision(DType.F32));
        assertTrue(e.getMessage().contains("TORCH") && e.getMessage().contains("F32"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config().withNsPrecision(DType.BF16).withNsMethod(Method.GRAM));
        assertTrue(e.getMessage().contains("Gram") && e.getMessage().contains("BF16"), e.getMessage());
    }
}
