package dev.muon4j.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.tensor.BFloat16;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * Every kernel of {@link CudaKernels} against the scalar Java arithmetic it states (muon4j-core's
 * {@code PlainKernels}, written out here): the elementwise kernels bit for bit (they are compiled
 * with {@code --fmad=false}), the double sums to 1e-12 relative.
 */
@EnabledIf("dev.muon4j.cuda.CudaTestSupport#gpuAvailable")
class CudaKernelsTest {
    private static final int N = 100_003; // not a multiple of the block size

    private static float[] random(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian() * scale;
        }
        return a;
    }

    @Test
    void momentumMatchesTheScalarKernelBitForBit() {
        CudaDevice d = CudaTestSupport.device();
        Random r = new Random(1);
        for (boolean ema : new boolean[] {true, false}) {
            for (boolean nesterov : new boolean[] {true, false}) {
                float[] g = random(r, N, 0.01f);
                float[] m = random(r, N, 0.02f);
                float beta = 0.95f;
                float gScale = ema ? (float) (1 - 0.95) : 1f;
                float[] mExpected = m.clone();
                float[] uExpected = new float[N];
                for (int i = 0; i < N; i++) {
                    float gv = gScale * g[i];
                    float mv = beta * mExpected[i] + gv;
                    mExpected[i] = mv;
                    uExpected[i] = nesterov ? beta * mv + gv : mv;
                }
                try (DeviceArray dg = d.upload(g); DeviceArray dm = d.upload(m); DeviceArray du = d.allocateFloats(N)) {
                    d.kernels.muonMomentum(dg.address(), dm.address(), du.address(), N, gScale, beta, nesterov);
                    assertArrayEquals(mExpected, dm.toFloats(), "momentum, ema " + ema + " nesterov " + nesterov);
                    assertArrayEquals(uExpected, du.toFloats(), "update, ema " + ema + " nesterov " + nesterov);
                }
            }
        }
    }

    @Test
    void adamAndTheDecoupledUpdateMatchTheScalarKernelsAndFuseExactly() {
        CudaDevice d = CudaTestSupport.device();
        Random r = new Random(2);
        float[] g = random(r, N, 0.01f);
        float[] m = random(r, N, 0.001f);
        float[] v = new float[N];
        for (int i = 0; i < N; i++) {
            v[i] = Math.abs((float) r.nextGaussian() * 1e-5f);
        }
        float[] w = random(r, N, 0.05f);
        CudaKernels.AdamScalars s = CudaKernels.AdamScalars.of(0.9, 0.999, 1e-8, 3);
        float decay = (float) (1 - 1e-3 * 0.1);
        float step = 1e-3f;
        for (boolean cautious : new boolean[] {false, true}) {
            float[] me = m.clone();
            float[] ve = v.clone();
            float[] ue = new float[N];
            float[] we = w.clone();
            for (int i = 0; i < N; i++) {
                float gv = g[i];
                float mv = s.beta1() * me[i] + s.oneMinusBeta1() * gv;
                float vv = s.beta2() * ve[i] + s.oneMinusBeta2() * (gv * gv);
                me[i] = mv;
                ve[i] = vv;
                ue[i] = (mv * s.invBc1()) / ((float) Math.sqrt(vv * s.invBc2()) + s.eps());
                float wv = we[i];
                float ov = ue[i];
                we[i] = cautious ? (wv * ov >= 0 ? wv * decay : wv) - step * ov : wv * decay - step * ov;
            }
            try (DeviceArray dg = d.upload(g); DeviceArray dm = d.upload(m); DeviceArray dv = d.upload(v); DeviceArray du = d.allocateFloats(N);
                 DeviceArray dw = d.upload(w); DeviceArray fm = d.upload(m); DeviceArray fv = d.upload(v); DeviceArray fw = d.upload(w)) {
                d.kernels.adamMoments(dg.address(), dm.address(), dv.address(), du.address(), N, s);
                d.kernels.decayUpdate(false, dw.address(), du.address(), N, decay, step, cautious);
                assertArrayEquals(me, dm.toFloats(), "exp_avg");
                assertArrayEquals(ve, dv.toFloats(), "exp_avg_sq");
                assertArrayEquals(ue, du.toFloats(), "adam's update");
                assertArrayEquals(we, dw.toFloats(), "weights, cautious " + cautious);
                d.kernels.adamw(fw.address(), dg.address(), fm.address(), fv.address(), N, s, decay, step, cautious);
                assertArrayEquals(we, fw.toFloats(), "fused AdamW, cautious " + cautious);
                assertArrayEquals(me, fm.toFloats(), "fused exp_avg");
                assertArrayEquals(ve, fv.toFloats(), "fused exp_avg_sq");
            }
        }
    }

    @Test
    void bfloat16ConversionRoundsAsBFloat16Round() {
        CudaDevice d = CudaTestSupport.device();
        Random r = new Random(3);
        float[] x = random(r, N, 1f);
        x[0] = Float.NaN;
        x[1] = Float.POSITIVE_INFINITY;
        x[2] = -0f;
        x[3] = Float.MIN_VALUE;
        x[4] = Float.intBitsToFloat(0x7f7f8000); // a tie above the largest bfloat16: rounds to infinity
        x[5] = Float.intBitsToFloat(0x3f808000); // a tie: to even
        x[6] = Float.intBitsToFloat(0x3f818000); // a tie: to even, upwards
        double[] sumsq = {1.0};
        try (DeviceArray dx = d.upload(x); DeviceArray s = d.allocate(1, DeviceArray.Type.F64);
             DeviceArray b = d.allocate(N, DeviceArray.Type.BF16); DeviceArray back = d.allocateFloats(N)) {
            d.zero(s.address(), 8);
            // s·‖G‖ + eps with the sum of squares 0 and eps 1: the factor is exactly 1, so normalize is a plain conversion.
            d.kernels.normalize(true, dx.address(), b.address(), N, 1, s.address(), 1.0, 1.0);
            d.kernels.bf16ToF32(b.address(), back.address(), N);
            float[] got = back.toFloats();
            for (int i = 0; i < N; i++) {
                float expected = BFloat16.round(x[i]);
                if (Float.isNaN(expected)) {
                    assertTrue(Float.isNaN(got[i]), "NaN stays NaN");
                } else {
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(got[i]), "element " + i + " = " + x[i]);
                }
            }
        }
        assertEquals(1, sumsq.length);
    }

    @Test
    void sumsOfSquaresAndTheNormalisationPerMatrix() {
        CudaDevice d = CudaTestSupport.device();
        Random r = new Random(4);
        int per = 70_001;
        int batch = 3;
        float[] x = random(r, per * batch, 0.3f);
        double normScale = 1.0001;
        double eps = 1e-7;
        try (DeviceArray dx = d.upload(x); DeviceArray s = d.allocate(batch, DeviceArray.Type.F64); DeviceArray out = d.allocateFloats(x.length)) {
            d.kernels.sumSquares(dx.address(), per, batch, s.address());
            double[] sums = s.toDoubles();
            float[] expectedOut = new float[x.length];
            for (int b = 0; b < batch; b++) {
                double e = 0;
                for (int i = 0; i < per; i++) {
                    e += (double) x[b * per + i] * x[b * per + i];
                }
                assertEquals(e, sums[b], 1e-12 * e, "sum of squares of matrix " + b);
                float f = (float) (1.0 / (normScale * Math.sqrt(sums[b]) + eps));
                for (int i = 0; i < per; i++) {
                    expectedOut[b * per + i] = x[b * per + i] * f;
                }
            }
            d.kernels.normalize(false, dx.address(), out.address(), per, batch, s.address(), normScale, eps);
            assertArrayEquals(expectedOut, out.toFloats(), "X = G / (s·‖G‖ + eps), per matrix");
        }
    }

    @Test
    void mirrorFillsTheBlocksBelowTheDiagonalFromAbove() {
        CudaDevice d = CudaTestSupport.device();
        int m = 96;
        int block = 32;
        int batch = 2;
        Random r = new Random(5);
        float[] c = new float[m * m * batch];
        float[] expected = new float[c.length];
        for (int b = 0; b < batch; b++) {
            // a symmetric matrix, column-major; below the block diagonal the input holds garbage
            for (int col = 0; col < m; col++) {
                for (int row = 0; row <= col; row++) {
                    float v = (float) r.nextGaussian();
                    expected[b * m * m + row + col * m] = v;
                    expected[b * m * m + col + row * m] = v;
                }
            }
            for (int col = 0; col < m; col++) {
                for (int row = 0; row < m; row++) {
                    boolean below = row / block > col / block;
                    c[b * m * m + row + col * m] = below ? -999f : expected[b * m * m + row + col * m];
                }
            }
        }
        try (DeviceArray dc = d.upload(c)) {
            d.kernels.mirror(false, dc.address(), m, block, batch);
            assertArrayEquals(expected, dc.toFloats());
        }
        // bfloat16: the same on the raw bits
        short[] bits = new short[c.length];
        short[] expectedBits = new short[c.length];
        for (int i = 0; i < c.length; i++) {
            bits[i] = (short) (Float.floatToRawIntBits(BFloat16.round(c[i])) >>> 16);
            expectedBits[i] = (short) (Float.floatToRawIntBits(BFloat16.round(expected[i])) >>> 16);
        }
        try (DeviceArray dc = d.allocate(c.length, DeviceArray.Type.BF16)) {
            dc.copyFromBf16Bits(bits);
            d.kernels.mirror(true, dc.address(), m, block, batch);
            assertArrayEquals(expectedBits, dc.toBf16Bits());
        }
    }
}
