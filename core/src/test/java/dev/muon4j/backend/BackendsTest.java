package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Backend selection: each kind opens and reports itself; AUTO takes oneDNN where its kernels run
 * AVX-512 and OpenBLAS elsewhere; a library that computes wrong is refused.
 */
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
    void oneDnnLoadsWithRequestedThreadsAndNamesItsInstructionSet() {
        try (OneDnnBackend b = Backends.openOneDnn(1)) {
            assertEquals(BackendKind.ONEDNN, b.kind());
            assertEquals(1, b.threads());
            assertTrue(b.description().startsWith("oneDNN 3."), b.description());
            assertTrue(b.description().contains(b.isa()), b.description());
            checkGemm(b);
        }
    }

    @Test
    void autoTakesOneDnnExactlyWhereItRunsAvx512() {
        boolean avx512;
        try (OneDnnBackend probe = Backends.openOneDnn(1)) {
            avx512 = probe.isa().startsWith("AVX-512");
        }
        try (Backend b = Backends.open(BackendConfig.defaults())) {
            if (avx512) {
                assertEquals(BackendKind.ONEDNN, b.kind(), b.description());
            } else {
                assertTrue(b.kind() == BackendKind.OPENBLAS_SYSTEM || b.kind() == BackendKind.OPENBLAS_BUNDLED, b.description());
            }
            checkGemm(b);
        }
    }

    @Test
    void autoLeavesOneDnnWhileAFlightRecordingRuns() {
        try (jdk.jfr.Recording recording = new jdk.jfr.Recording()) {
            recording.start();
            assertTrue(Backends.flightRecordingRuns());
            try (Backend b = Backends.open(BackendConfig.defaults())) {
                assertTrue(b.kind() == BackendKind.OPENBLAS_SYSTEM || b.kind() == BackendKind.OPENBLAS_BUNDLED, b.description());
                checkGemm(b);
            }
        }
        assertTrue(!Backends.flightRecordingRuns(), "the closed recording still counts");
    }

    @Test
    void instructionSetNamesFollowOneDnnsBitSets() {
        assertEquals("AVX2", OneDnnBackend.isaName(0x7));
        assertEquals("AVX-512+BF16", OneDnnBackend.isaName(0xe7));
        assertTrue(OneDnnBackend.isaName(0x1ef).startsWith("AVX-512"), OneDnnBackend.isaName(0x1ef));
        assertEquals("isa 0x2", OneDnnBackend.isaName(0x2));
    }

    @Test
    void aBackendThatComputesWrongIsRefusedNamingTheError() {
        // a real backend whose GEMM drops the last term of every sum: what a miscompiled kernel does
        class DropsATerm implements Backend {
            final VectorBackend inner = new VectorBackend(1);

            @Override public String description() { return "drops a term"; }
            @Override public BackendKind kind() { return BackendKind.VECTOR; }
            @Override public int threads() { return 1; }

            @Override
            public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int aOffset,
                             int lda, float[] b, int bOffset, int ldb, float beta, float[] c, int cOffset, int ldc) {
                inner.gemm(transA, transB, m, n, k - 1, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
            }

            @Override
            public void syrk(boolean trans, int n, int k, float alpha, float[] a, int aOffset, int lda, float beta,
                             float[] c, int cOffset, int ldc) {
                inner.syrk(trans, n, k, alpha, a, aOffset, lda, beta, c, cOffset, ldc);
            }

            @Override
            public void symm(int m, int n, float alpha, float[] s, int sOffset, int lds, float[] b, int bOffset, int ldb,
                             float beta, float[] c, int cOffset, int ldc) {
                inner.symm(m, n, alpha, s, sOffset, lds, b, bOffset, ldb, beta, c, cOffset, ldc);
            }
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.checked(new DropsATerm()));
        assertTrue(e.getMessage().contains("wrong results") && e.getMessage().contains("largest error"), e.getMessage());
        try (OneDnnBackend good = Backends.checked(Backends.openOneDnn(2))) {
            checkGemm(good);
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
