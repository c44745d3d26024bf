package dev.muon4j.autograd;

import dev.muon4j.backend.Backend;
import java.util.Arrays;
import java.util.List;

/**
 * The operations of a Mixture-of-Experts layer (DeepSeek-V3 style, see {@code dev.muon4j.nn.MixtureOfExperts}),
 * each with its backward next to its forward. Tokens are grouped by expert with a permutation, so
 * each expert runs one GEMM over its tokens ({@link #groupedLinear}); the combine is one weighted
 * scatter-add. Shape letters: N tokens, E experts, K experts per token, M = N·K routed rows, C width.
 */
final class ExpertOps {
    private ExpertOps() {
    }

    /** y = σ(x) = 1 / (1 + e^(−x)), elementwise; dy/dx = y·(1 − y). */
    static Tensor sigmoid(Graph g, Tensor x) {
        Tensor y = g.output(g.needsGrad(x), x.shape());
        int n = x.size();
        for (int i = 0; i < n; i++) {
            y.data[i] = (float) (1 / (1 + Math.exp(-x.data[i])));
        }
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                for (int i = 0; i < n; i++) {
                    float s = y.data[i];
                    dx[i] += dy[i] * s * (1 - s);
                }
            });
        }
        return y;
    }

    /**
     * The gates of the chosen experts: for token n and its k-th choice e = chosen[n·K + k],
     * {@code w[n, k] = scale · s[n, e] / (Σ_j s[n, chosen[n·K + j]] + 1e-20)}, as Hugging Face's
     * DeepseekV3TopkRouter with {@code norm_topk_prob} (the 1e-20 is its literal). Gradient flows
     * into the chosen scores only.
     *
     * @param scores (N, E) router affinities, positive
     * @param chosen N·K expert ids, each in [0, E)
     */
    static Tensor topKGates(Graph g, Tensor scores, int[] chosen, int k, double scale) {
        int n = scores.rows();
        int e = scores.cols();
        if (k < 1 || chosen.length != n * k) {
            throw new IllegalArgumentException("top-k gates: " + chosen.length + " choices for " + n + " tokens of " + k);
        }
        for (int c : chosen) {
            if (c < 0 || c >= e) {
                throw new IllegalArgumentException("top-k gates: expert " + c + " outside [0, " + e + ")");
            }
        }
        Tensor w = g.output(g.needsGrad(scores), n, k);
        double[] denominators = new double[n];
        for (int t = 0; t < n; t++) {
            double sum = 0;
            for (int j = 0; j < k; j++) {
                sum += scores.data[t * e + chosen[t * k + j]];
            }
            denominators[t] = sum + 1e-20;
            for (int j = 0; j < k; j++) {
                w.data[t * k + j] = (float) (scale * scores.data[t * e + chosen[t * k + j]] / denominators[t]);
            }
        }
        if (w.requiresGrad()) {
            g.record(w, () -> {
                float[] dw = g.grad(w);
                float[] ds = g.grad(scores);
                for (int t = 0; t < n; t++) {
                    // w_j = c·s_j/S  ⇒  ∂L/∂s_j = c/S · (dw_j − Σ_i dw_i·s_i/S)
                    double s = denominators[t];
                    double dot = 0;
                    for (int j = 0; j < k; j++) {
                        dot += dw[t * k + j] * (double) scores.data[t * e + chosen[t * k + j]];
                    }
                    for (int j = 0; j < k; j++) {
                        ds[t * e + chosen[t * k + j]] += (float) (scale / s * (dw[t * k + j] - dot / s));
                    }
                }
            });
        }
        return w;
    }

    /** y (M, C) = rows {@code rows[m]} of x (N, C); backward adds each row's gradient back into its source row. */
    static Tensor gatherRows(Graph g, Tensor x, int[] rows) {
        int n = x.rows();
        int c = x.cols();
        for (int r : rows) {
            if (r < 0 || r >= n) {
                throw new IllegalArgumentException("gather rows: row " + r + " outside [0, " + n + ")");
            }
        }
        Tensor y = g.output(g.needsGrad(x), rows.length, c);
        for (int m = 0; m < rows.length; m++) {
            System.arraycopy(x.data, rows[m] * c, y.data, m * c, c);
        }
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                for (int m = 0; m < rows.length; m++) {
                    int from = m * c;
                    int to = rows[m] * c;
                    for (int j = 0; j < c; j++) {
                        dx[to + j] += dy[from + j];
                    }
                }
            });
        }
        return y;
    }

    /**
     * y (M, out) where rows {@code [offsets[e], offsets[e+1])} of x (M, in) go through expert e's
     * weight: {@code y[m] = x[m] · W[e]ᵀ}, W (E, out, in). One GEMM per expert with tokens.
     */
    static Tensor groupedLinear(Graph g, Tensor x, Tensor w, int[] offsets) {
        if (w.rank() != 3 || x.cols() != w.dim(2)) {
            throw new IllegalArgumentException("grouped linear: input " + Arrays.toString(x.shape()) + " does not fit weights "
                    + Arrays.toString(w.shape()) + " (weights are (experts, out, in))");
        }
        int experts = w.dim(0);
        int out = w.dim(1);
        int in = w.dim(2);
        if (offsets.length != experts + 1 || offsets[0] != 0 || offsets[experts] != x.rows()) {
            throw new IllegalArgumentException("grouped linear: offsets " + Arrays.toString(offsets) + " do not split "
                    + x.rows() + " rows among " + experts + " experts");
        }
        for (int e = 0; e < experts; e++) {
            if (offsets[e + 1] < offsets[e]) {
                throw new IllegalArgumentException("grouped linear: offsets decrease at expert " + e + ": " + Arrays.toString(offsets));
            }
        }
        Tensor y = g.output(g.needsGrad(x, w), x.rows(), out);
        int matrix = out * in;
        perExpert(g, offsets, (b, first, last) -> {
            for (int e = first; e < last; e++) {
                int rows = offsets[e + 1] - offsets[e];
                if (rows > 0) {
                    b.gemm(false, true, rows, out, in, 1f, x.data, offsets[e] * in, in, w.data, e * matrix, in, 0f, y.data,
                            offsets[e] * out, out);
                }
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = x.requiresGrad ? g.grad(x) : null;
                float[] dw = w.requiresGrad ? g.grad(w) : null;
                perExpert(g, offsets, (b, first, last) -> {
                    for (int e = first; e < last; e++) {
                        int rows = offsets[e + 1] - offsets[e];
                        if (rows == 0) {
                            continue;
                        }
                        if (dx != null) {
                            b.gemm(false, false, rows, in, out, 1f, dy, offsets[e] * out, out, w.data, e * matrix, in, 1f, dx,
                                    offsets[e] * in, in);
                        }
                        if (dw != null) {
                            b.gemm(true, false, out, in, rows, 1f, dy, offsets[e] * out, out, x.data, offsets[e] * in, in, 1f, dw,
                                    e * matrix, in);
                        }
                    }
                });
            });
        }
        return y;
    }

    /** Work on the experts {@code [first, last)} on {@code backend}. */
    @FunctionalInterface
    private interface ExpertRange {
        void run(Backend backend, int first, int last);
    }

    /**
     * Runs {@code body} over all experts: on the graph's backend in one call, or, where the backend has
     * {@link Backend#concurrentWorkers() concurrent workers} and the graph more than one thread, over
     * contiguous runs of experts with about equal rows each, one run per worker, side by side. An
     * expert's products write only its own rows of the output and of dx and its own slice of dw, so
     * the runs never touch the same memory; which worker runs an expert depends only on the routing.
     */
    private static void perExpert(Graph g, int[] offsets, ExpertRange body) {
        int experts = offsets.length - 1;
        List<Backend> workers = g.backend().concurrentWorkers();
        int parts = Math.min(Math.min(workers.size(), g.parallel().threads()), experts);
        if (parts < 2) {
            body.run(g.backend(), 0, experts);
            return;
        }
        int total = offsets[experts];
        int[] split = new int[parts + 1];
        split[parts] = experts;
        for (int p = 1, e = 0; p < parts; p++) {
            long target = (long) total * p / parts;
            while (e < experts && offsets[e] < target) {
                e++;
            }
            split[p] = Math.max(e, split[p - 1]);
        }
        g.parallel().forRows(parts, 1, (from, to) -> {
            for (int p = from; p < to; p++) {
                body.run(workers.get(p), split[p], split[p + 1]);
            }
        });
    }

    /**
     * The weighted scatter-add that combines the experts' outputs: out (N, C) with
     * {@code out[slot[m] / K] += gates[slot[m]] · y[m]} for every routed row m, where {@code slot[m]}
     * is the (token·K + choice) the row came from; rows are added in the order of m.
     *
     * @param y     (M, C) the experts' outputs, grouped by expert
     * @param gates (N, K)
     * @param slot  M distinct indices into gates
     */
    static Tensor combine(Graph g, Tensor y, Tensor gates, int[] slot) {
        int m = y.rows();
        int c = y.cols();
        int n = gates.rows();
        int k = gates.cols();
        if (slot.length != m) {
            throw new IllegalArgumentException("combine: " + slot.length + " slots for " + m + " rows");
        }
        for (int s : slot) {
            if (s < 0 || s >= n * k) {
                throw new IllegalArgumentException("combine: slot " + s + " outside [0, " + n * k + ")");
            }
        }
        Tensor out = g.output(g.needsGrad(y, gates), n, c);
        Arrays.fill(out.data, 0, n * c, 0f);
        for (int r = 0; r < m; r++) {
            float gate = gates.data[slot[r]];
            int to = slot[r] / k * c;
            int from = r * c;
            for (int j = 0; j < c; j++) {
                out.data[to + j] += gate * y.data[from + j];
            }
        }
        if (out.requiresGrad()) {
            g.record(out, () -> {
                float[] dOut = g.grad(out);
                float[] dy = y.requiresGrad ? g.grad(y) : null;
                float[] dGates = gates.requiresGrad ? g.grad(gates) : null;
                for (int r = 0; r < m; r++) {
                    int to = slot[r] / k * c;
                    int from = r * c;
                    if (dy != null) {
                        float gate = gates.data[slot[r]];
                        for (int j = 0; j < c; j++) {
                            dy[from + j] += gate * dOut[to + j];
                        }
                    }
                    if (dGates != null) {
                        double dot = 0;
                        for (int j = 0; j < c; j++) {
                            dot += (double) y.data[from + j] * dOut[to + j];
                        }
                        dGates[slot[r]] += (float) dot;
                    }
                }
            });
        }
        return out;
    }

    /**
     * DeepSeek-V3's sequence-wise balance loss (arXiv 2412.19437, eq. 17–20), averaged over the
     * sequences: for each sequence of T tokens,
     * <pre>
     * f_i = E / (K·T) · (tokens of the sequence routed to expert i)      a constant: counts of the choice
     * P_i = (1/T) · Σ_t s_{i,t} / Σ_j s_{j,t}                              the normalised affinities
     * L   = α · Σ_i f_i · P_i
     * </pre>
     * The count uses the experts actually chosen (by s + b). Gradient flows into the scores through P.
     *
     * @param scores (B·T, E) router affinities, positive
     * @param chosen B·T·K expert ids
     * @return a one-element tensor
     */
    static Tensor balanceLoss(Graph g, Tensor scores, int[] chosen, int batch, int time, int k, double alpha) {
        int n = scores.rows();
        int e = scores.cols();
        if (batch < 1 || time < 1 || (long) batch * time != n || chosen.length != n * k) {
            throw new IllegalArgumentException("balance loss: " + n + " rows and " + chosen.length + " choices are not " + batch
                    + " sequences of " + time + " tokens with " + k + " experts each");
        }
        double[] f = new double[batch * e];
        double[] sums = new double[n];
        for (int t = 0; t < n; t++) {
            int seq = t / time;
            for (int j = 0; j < k; j++) {
                f[seq * e + chosen[t * k + j]] += (double) e / ((double) k * time);
            }
            double sum = 0;
            for (int i = 0; i < e; i++) {
                sum += scores.data[t * e + i];
            }
            sums[t] = sum;
        }
        double loss = 0;
        for (int t = 0; t < n; t++) {
            int seq = t / time;
            for (int i = 0; i < e; i++) {
                loss += f[seq * e + i] * scores.data[t * e + i] / sums[t];
            }
        }
        Tensor out = g.output(g.needsGrad(scores), 1);
        out.data[0] = (float) (alpha * loss / ((double) time * batch));
        if (out.requiresGrad()) {
            g.record(out, () -> {
                double d = g.grad(out)[0] * alpha / ((double) time * batch);
                float[] ds = g.grad(scores);
                for (int t = 0; t < n; t++) {
                    int seq = t / time;
                    // ∂/∂s_j of Σ_i f_i·s_i/S = (f_j − Σ_i f_i·s_i/S) / S
                    double mean = 0;
                    for (int i = 0; i < e; i++) {
                        mean += f[seq * e + i] * scores.data[t * e + i];
                    }
                    mean /= sums[t];
                    for (int j = 0; j < e; j++) {
                        ds[t * e + j] += (float) (d * (f[seq * e + j] - mean) / sums[t]);
                    }
                }
            });
        }
        return out;
    }
}
