package dev.muon4j.cli.demo;

import dev.muon4j.backend.Backend;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A small regression task with hand-written backpropagation: a student MLP
 * {@code in → hidden → hidden → out} (ReLU) learns to imitate a fixed random teacher MLP
 * {@code in → teacherHidden → out} (tanh). Shapes: B batch, D input, H hidden, O output.
 *
 * <p>The student's two inner weight matrices are hidden matrices (Muon's), the output layer is
 * the head and the biases are biases (AdamW's).
 */
public final class TeacherStudentMlp {
    public static final int INPUT = 32;
    public static final int HIDDEN = 256;
    public static final int OUTPUT = 8;
    private static final int TEACHER_HIDDEN = 64;

    private final Backend backend;
    final Parameter w1; // (H, D)
    final Parameter b1; // (H)
    final Parameter w2; // (H, H)
    final Parameter b2; // (H)
    final Parameter w3; // (O, H)
    final Parameter b3; // (O)

    // Activations and gradients for one batch of at most maxBatch rows.
    private final int maxBatch;
    private final float[] z1;
    private final float[] h1;
    private final float[] z2;
    private final float[] h2;
    private final float[] y;
    private final float[] dy;
    private final float[] dh;

    public TeacherStudentMlp(Backend backend, long seed, int maxBatch) {
        this.backend = backend;
        this.maxBatch = maxBatch;
        SplittableRandom r = new SplittableRandom(seed);
        w1 = init(Parameter.matrix("w1", HIDDEN, INPUT), r, INPUT);
        b1 = Parameter.zeros("b1", ParamRole.BIAS, HIDDEN);
        w2 = init(Parameter.matrix("w2", HIDDEN, HIDDEN), r, HIDDEN);
        b2 = Parameter.zeros("b2", ParamRole.BIAS, HIDDEN);
        w3 = init(Parameter.zeros("w3", ParamRole.HEAD, OUTPUT, HIDDEN), r, HIDDEN);
        b3 = Parameter.zeros("b3", ParamRole.BIAS, OUTPUT);
        z1 = new float[maxBatch * HIDDEN];
        h1 = new float[maxBatch * HIDDEN];
        z2 = new float[maxBatch * HIDDEN];
        h2 = new float[maxBatch * HIDDEN];
        y = new float[maxBatch * OUTPUT];
        dy = new float[maxBatch * OUTPUT];
        dh = new float[maxBatch * HIDDEN];
    }

    public List<Parameter> parameters() {
        return List.of(w1, b1, w2, b2, w3, b3);
    }

    private static Parameter init(Parameter p, SplittableRandom r, int fanIn) {
        float[] v = p.value();
        double std = 1.0 / Math.sqrt(fanIn);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * std);
        }
        return p;
    }

    /** A data set drawn from a random teacher network: inputs (N, D) and targets (N, O). */
    public record Dataset(float[] inputs, float[] targets, int size) {
    }

    /** N samples with standard-normal inputs, labelled by the teacher fixed by {@code teacherSeed}. */
    public static Dataset teacherData(long teacherSeed, long dataSeed, int n) {
        SplittableRandom tr = new SplittableRandom(teacherSeed);
        double[] tw1 = gaussian(tr, TEACHER_HIDDEN * INPUT, 2.0 / Math.sqrt(INPUT));
        double[] tw2 = gaussian(tr, OUTPUT * TEACHER_HIDDEN, 1.0 / Math.sqrt(TEACHER_HIDDEN));
        SplittableRandom dr = new SplittableRandom(dataSeed);
        float[] x = new float[n * INPUT];
        float[] t = new float[n * OUTPUT];
        double[] hidden = new double[TEACHER_HIDDEN];
        for (int s = 0; s < n; s++) {
            for (int d = 0; d < INPUT; d++) {
                x[s * INPUT + d] = (float) dr.nextGaussian();
            }
            for (int h = 0; h < TEACHER_HIDDEN; h++) {
                double acc = 0;
                for (int d = 0; d < INPUT; d++) {
                    acc += tw1[h * INPUT + d] * x[s * INPUT + d];
                }
                hidden[h] = Math.tanh(acc);
            }
            for (int o = 0; o < OUTPUT; o++) {
                double acc = 0;
                for (int h = 0; h < TEACHER_HIDDEN; h++) {
                    acc += tw2[o * TEACHER_HIDDEN + h] * hidden[h];
                }
                t[s * OUTPUT + o] = (float) acc;
            }
        }
        return new Dataset(x, t, n);
    }

    private static double[] gaussian(SplittableRandom r, int n, double std) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = r.nextGaussian() * std;
        }
        return v;
    }

    /** Mean squared error on rows [from, from + batch) of the data; with {@code backward}, fills every gradient. */
    public double loss(Dataset data, int from, int batch, boolean backward) {
        if (batch > maxBatch) {
            throw new IllegalArgumentException("batch " + batch + " exceeds " + maxBatch);
        }
        float[] x = data.inputs();
        int xOff = from * INPUT;
        linear(x, xOff, INPUT, batch, w1, b1, HIDDEN, z1);
        relu(z1, h1, batch * HIDDEN);
        linear(h1, 0, HIDDEN, batch, w2, b2, HIDDEN, z2);
        relu(z2, h2, batch * HIDDEN);
        linear(h2, 0, HIDDEN, batch, w3, b3, OUTPUT, y);
        double sum = 0;
        float scale = 2f / (batch * OUTPUT);
        for (int i = 0; i < batch * OUTPUT; i++) {
            float diff = y[i] - data.targets()[from * OUTPUT + i];
            sum += (double) diff * diff;
            dy[i] = scale * diff;
        }
        if (backward) {
            // Layer 3: dW3 = dyᵀ·h2, db3 = Σ dy, dh2 = dy·W3
            linearBackward(dy, h2, 0, batch, HIDDEN, OUTPUT, w3, b3);
            backend.gemm(false, false, batch, HIDDEN, OUTPUT, 1f, dy, 0, OUTPUT, w3.value(), 0, HIDDEN, 0f, dh, 0, HIDDEN);
            reluBackward(z2, dh, batch * HIDDEN);
            // Layer 2
            linearBackward(dh, h1, 0, batch, HIDDEN, HIDDEN, w2, b2);
            float[] dh1 = z2; // z2 is no longer needed: reuse it for dh1
            backend.gemm(false, false, batch, HIDDEN, HIDDEN, 1f, dh, 0, HIDDEN, w2.value(), 0, HIDDEN, 0f, dh1, 0, HIDDEN);
            reluBackward(z1, dh1, batch * HIDDEN);
            // Layer 1
            linearBackward(dh1, x, xOff, batch, INPUT, HIDDEN, w1, b1);
        }
        return sum / (batch * OUTPUT);
    }

    /** out (B, O) = in (B, I) · Wᵀ + b. */
    private void linear(float[] in, int inOff, int inDim, int batch, Parameter w, Parameter b, int outDim, float[] out) {
        for (int r = 0; r < batch; r++) {
            System.arraycopy(b.value(), 0, out, r * outDim, outDim);
        }
        backend.gemm(false, true, batch, outDim, inDim, 1f, in, inOff, inDim, w.value(), 0, inDim, 1f, out, 0, outDim);
    }

    /** dW (O, I) = dOutᵀ · in, db = Σ_rows dOut (both overwrite the gradients). */
    private void linearBackward(float[] dOut, float[] in, int inOff, int batch, int inDim, int outDim, Parameter w, Parameter b) {
        backend.gemm(true, false, outDim, inDim, batch, 1f, dOut, 0, outDim, in, inOff, inDim, 0f, w.gradient(), 0, inDim);
        float[] db = b.gradient();
        java.util.Arrays.fill(db, 0f);
        for (int r = 0; r < batch; r++) {
            for (int o = 0; o < outDim; o++) {
                db[o] += dOut[r * outDim + o];
            }
        }
    }

    private static void relu(float[] z, float[] h, int n) {
        for (int i = 0; i < n; i++) {
            h[i] = Math.max(0f, z[i]);
        }
    }

    /** d ← d ⊙ [z > 0]. */
    private static void reluBackward(float[] z, float[] d, int n) {
        for (int i = 0; i < n; i++) {
            if (z[i] <= 0f) {
                d[i] = 0f;
            }
        }
    }
}
