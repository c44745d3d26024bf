package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Backend selection: each kind opens, reports itself, and AUTO prefers OpenBLAS. */
class BackendsTest {

    private static void checkGemm(Backend b) {
        float[] a = {1, 2, 3, 4};
        float[] x = {5, 6, 7, 8};
        float[] c = new float[4];
        b.gemm(false, false, 2, 2, 2, 1f, a, 0, 2, x, 0, 2, 0f, c, 0, 2);
        assertEquals(19f, c[0]);
        assertEquals(22f, c[1]);
        assertEquals(43f, c[2]);
        assertEquals(50f, c[3]);
    }

    @Test
    void bundledOpenBlasLoadsWithRequestedThreads() {
        try (Backend b = Backends.open(new BackendConfig(BackendKind.OPENBLAS_BUNDLED, 1))) {
            assertEquals(BackendKind.OPENBLAS_BUNDLED, b.kind());
            assertEquals(1, b.threads());
            assertTrue(b.description().contains("OpenBLAS"), b.description());
            checkGemm(b);
        }
    }

    @Test
    void systemOpenBlasLoadsWhenInstalled() {
        assumeTrue(Files.isRegularFile(Path.of("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0")),
                "Debian's libopenblas0-pthread is not installed");
        try (Backend b = Backends.open(new BackendConfig(BackendKind.OPENBLAS_SYSTEM, 2))) {
            assertEquals(BackendKind.OPENBLAS_SYSTEM, b.kind());
            checkGemm(b);
        }
    }

    @Test
    void autoPrefersOpenBlas() {
        try (Backend b = Backends.open(BackendConfig.defaults())) {
            assertTrue(b.kind() == BackendKind.OPENBLAS_SYSTEM || b.kind() == BackendKind.OPENBLAS_BUNDLED, b.description());
            checkGemm(b);
        }
    }

    @Test
    void vectorBackendAlwaysOpens() {
        try (Backend b = Backends.open(new BackendConfig(BackendKind.VECTOR, 2))) {
            assertEquals(BackendKind.VECTOR, b.kind());
            checkGemm(b);
        }
    }

    @Test
    void badThreadCountAndMissingOverrideAreClearErrors() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BackendConfig(BackendKind.AUTO, 0));
        assertTrue(e.getMessage().contains("threads"), e.getMessage());
        String old = System.getProperty("muon4j.openblas.path");
        System.setProperty("muon4j.openblas.path", "/nonexistent/libopenblas.so.0");
        try {
            IllegalStateException s = assertThrows(IllegalStateException.class, () -> Backends.openSystem(1));
            assertTrue(s.getMessage().contains("/nonexistent/libopenblas.so.0"), s.getMessage());
        } finally {
            if (old == null) {
                System.clearProperty("muon4j.openblas.path");
            } else {
                System.setProperty("muon4j.openblas.path", old);
            }
        }
    }
}
