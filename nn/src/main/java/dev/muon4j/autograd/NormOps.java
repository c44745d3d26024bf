package dev.muon4j.autograd;

import dev.muon4j.backend.Kernels;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** RMSNorm and the embedding lookup: row-wise operations split over rows. */
final class NormOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private NormOps() {
    }

    /**
     * RMSNorm over the last dimension: {@code y = x / √(mean(x²) + eps) ⊙ gain}, x (N, C), gain (C).
     * Backward, with r = 1/√(mean(x²) + eps) and u = dy ⊙ gain:
     * {@code dx = r·u − x·r³·Σ(u⊙x)/C},  {@code dgain += Σ_rows dy ⊙ x·r}.
     */
    static Tensor rmsNorm(Graph g, Tensor x, Tensor gain, float eps) {
        int c = x.cols();
        if (gain.size() != c) {
            throw new IllegalArgumentException("rmsNorm: gain " + Arrays.toString(gain.shape()) + " does not match channels " + c);
        }
        if (!(eps > 0)) {
            throw new IllegalArgumentException("rmsNorm: eps must be > 0, got " + eps);
        }
        int n = x.rows();
        Tensor y = g.output(g.needsGrad(x, gain), x.shape());
        float[] inverseRms = g.scratch(n);
        int grain = Math.max(1, 4096 / Math.max(1, c)) * 8;
        g.parallel().forRows(n, grain, (from, to) -> {
            for (int row = from; row < to; row++) {
                int off = row * c;
                float r = (float) (1.0 / Math.sqrt(Kernels.sumOfSquares(x.data, off, c) / c + eps));
                inverseRms[row] = r;
                int i = 0;
                for (int bound = S.loopBound(c); i < bound; i += L) {
                    FloatVector.fromArray(S, x.data, off + i).mul(r).mul(FloatVector.fromArray(S, gain.data, i)).intoArray(y.data, off + i);
                }
                for (; i < c; i++) {
                    y.data[off + i] = x.data[off + i] * r * gain.data[i];
                }
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                if (x.requiresGrad) {
                    float[] dx = g.grad(x);
                    g.parallel().forRows(n, grain, (from, to) -> {
                        for (int row = from; row < to; row++) {
                            int off = row * c;
                            float r = inverseRms[row];
                            double dot = 0;
                            for (int i = 0; i < c; i++) {
                                dot += (double) dy[off + i] * gain.data[i] * x.data[off + i];
                            }
                            float k = (float) (dot * r * r * r / c);
                            for (int i = 0; i < c; i++) {
                                dx[off + i] += r * dy[off + i] * gain.data[i] - k * x.data[off + i];
                            }
                        }
                    });
                }
                if (gain.requiresGrad) {
                    float[] dGain = g.grad(gain);
                    // Sum over rows in double per channel: rows are split, channels are not, so this stays serial.
                    double[] acc = new double[c];
                    for (int row = 0; row < n; row++) {
                        int off = row * c;
                        float r = inverseRms[row];
                        for (int i = 0; i < c; i++) {
                            acc[i] += (double) dy[off + i] * x.data[off + i] * r;
                        }
                    }
                    for (int i = 0; i < c; i++) {
                        dGain[i] += (float) acc[i];
                    }
                }
            });
        }
        return y;
    }

    /** Rows of table (V, C) picked by tokens: y (N, C); backward adds each row's gradient into its table row. */
    static Tensor embedding(Graph g, Tensor table, int[] tokens) {
        if (table.rank() != 2) {
            throw new IllegalArgumentException("embedding: table must be (vocab, channels), got " + Arrays.toString(table.shape()));
        }
        int vocab = table.dim(0);
        int c = table.dim(1);
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                throw new IllegalArgumentException("embedding: token " + tokens[i] + " at position " + i + " is outside the vocabulary of " + vocab);
            }
        }
        int n = tokens.length;
        Tensor y = g.output(g.needsGrad(table), n, c);
        for (int i = 0; i < n; i++) {
            System.arraycopy(table.data, tokens[i] * c, y.data, i * c, c);
        }
        if (y.requiresGrad()) {
            int[] saved = tokens.clone();
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dTable = g.grad(table);
                for (int i = 0; i < n; i++) {
                    int row = saved[i] * c;
                    for (int j = 0; j < c; j++) {
                        dTable[row + j] += dy[i * c + j];
                    }
                }
            });
        }
        return y;
    }
}
