package dev.muon4j.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.NewtonSchulz;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.tensor.DType;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * Newton–Schulz on the GPU against muon4j-core's on the CPU (the pure-Java backend, float32 products,
 * bfloat16 rounding after each product in BF16 precision): wide, tall and square matrices, batches,
 * whole and blocked symmetric products.
 *
 * <p>Tolerances: float32, every element within 2e-4 of the CPU's (elements are about 1/√n ≈ 0.05–0.1;
 * the two differ only in the order of float32 sums, which five steps amplify a little). BF16: the
 * mean absolute difference within 2% of the mean absolute element and every element within 0.05,
 * since one rounding of a product may fall differently when the sums' order differs, and the next
 * step carries it on.
 */
@EnabledIf("dev.muon4j.cuda.CudaTestSupport#gpuAvailable")
class CudaNewtonSchulzTest {
    private static final VectorBackend CPU = new VectorBackend(1);

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    private static float[] cpu(NewtonSchulzConfig config, float[] g, int rows, int cols, int batch) {
        float[] out = new float[g.length];
        NewtonSchulz.Workspace w = new NewtonSchulz.Workspace();
        for (int b = 0; b < batch; b++) {
            NewtonSchulz.orthogonalize(CPU, config, g, b * rows * cols, rows, cols, out, b * rows * cols, w);
        }
        return out;
    }

    private static float[] gpu(NewtonSchulzConfig config, float[] g, int rows, int cols, int batch, int blocks) {
        CudaDevice d = CudaTestSupport.device();
        try (DeviceArray in = d.upload(g); DeviceArray out = d.allocateFloats(g.length);
             CudaNewtonSchulz ns = new CudaNewtonSchulz(d, config, rows, cols, batch, blocks)) {
            ns.orthogonalize(in.address(), out.address());
            float[] result = out.toFloats();
            assertTrue(java.util.Arrays.equals(g, in.toFloats()), "the input is left as it was");
            return result;
        }
    }

    private static void check(DType precision, int rows, int cols, int batch, int blocks) {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(precision);
        float[] g = random(new Random(rows * 31L + cols * 7L + batch), rows * cols * batch);
        float[] expected = cpu(config, g, rows, cols, batch);
        float[] got = gpu(config, g, rows, cols, batch, blocks);
        double maxDiff = 0;
        double sumDiff = 0;
        double sumAbs = 0;
        for (int i = 0; i < g.length; i++) {
            double diff = Math.abs(expected[i] - got[i]);
            maxDiff = Math.max(maxDiff, diff);
            sumDiff += diff;
            sumAbs += Math.abs(expected[i]);
        }
        String what = precision + " " + rows + "×" + cols + " × " + batch + ", " + blocks + " blocks: max |diff| " + maxDiff
                + ", mean |diff| / mean |x| " + sumDiff / sumAbs;
        System.out.println("Newton–Schulz on the GPU against the CPU, " + what);
        if (precision == DType.F32) {
            assertTrue(maxDiff <= 2e-4, what);
        } else {
            assertTrue(maxDiff <= 0.05 && sumDiff <= 0.02 * sumAbs, what);
        }
    }

    @Test
    void float32WideTallAndSquareAgreeWithTheCpu() {
        check(DType.F32, 64, 160, 1, 1);
        check(DType.F32, 160, 64, 1, 1);
        check(DType.F32, 128, 128, 1, 1);
        check(DType.F32, 96, 192, 3, 1);
        check(DType.F32, 192, 96, 3, 1);
    }

    @Test
    void float32BlockedSymmetricProductsAgreeWithTheCpu() {
        check(DType.F32, 128, 320, 2, 2);
        check(DType.F32, 320, 128, 2, 4);
        check(DType.F32, 256, 256, 1, 4);
    }

    @Test
    void bfloat16AgreesWithTheCpusBfloat16Mode() {
        check(DType.BF16, 64, 160, 1, 1);
        check(DType.BF16, 160, 64, 2, 1);
        check(DType.BF16, 128, 384, 3, 2);
        check(DType.BF16, 384, 128, 3, 4);
        check(DType.BF16, 256, 256, 2, 2);
    }

    @Test
    void aZeroMatrixStaysZero() {
        float[] zeros = new float[48 * 80];
        float[] out = gpu(NewtonSchulzConfig.defaults().withEps(0), zeros, 48, 80, 1, 1);
        for (float v : out) {
            assertTrue(v == 0f, "G = 0 with eps = 0 gives 0, not NaN");
        }
    }

    @Test
    void blocksThatDoNotDivideAreRefused() {
        CudaDevice d = CudaTestSupport.device();
        assertThrows(IllegalArgumentException.class, () -> new CudaNewtonSchulz(d, NewtonSchulzConfig.defaults(), 100, 300, 1, 3));
    }
}
