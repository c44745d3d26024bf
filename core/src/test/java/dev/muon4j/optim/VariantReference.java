package dev.muon4j.optim;

import dev.muon4j.tensor.BFloat16;
import java.util.Arrays;

/**
 * Plain float64 reference implementations of the Muon variants described in docs/VARIANTS.md,
 * written from the primary sources cited there and independent of the code under test: NorMuon's
 * post-orthogonalization normalization, cautious weight decay, QK-clip (multi-head, grouped-query and
 * multi-head latent attention), per-head orthogonalization, Gram Newton–Schulz, AOL pre-scaling, and an
 * emulation of torch.optim.Muon's bfloat16 Newton–Schulz arithmetic.
 *
 * <p>Matrices are row-major {@code double[]} (the bfloat16 emulation takes the float32 gradient as
 * {@code float[]}). A weight W is fan-out × fan-in (rows × cols), as in README.md's "What Muon does".
 * No function modifies its arguments; every result is a new array.
 */
final class VariantReference {
    /** NorMuon's β2 for the per-row second moment: microsoft/dion {@code NorMuon(muon_beta2=0.95)}. */
    static final double NORMUON_BETA2 = 0.95;
    /** NorMuon's ε in 1/(√v + ε): microsoft/dion {@code _normuon_normalization_core}, hard-coded 1e-8. */
    static final double NORMUON_EPS = 1e-8;
    /** Floor of the normalized update's Frobenius norm in the rescale: dion, {@code clamp(min=1e-8)}. */
    static final double NORMUON_NORM_FLOOR = 1e-8;
    /** QK-clip threshold τ: Kimi K2 report (arXiv 2507.20534) τ = 100; Megatron-LM {@code qk_clip_threshold}. */
    static final double QK_CLIP_TAU = 100;
    /** torch.optim.Muon's {@code EPS} (torch/optim/_muon.py), the clamp floor of ‖G‖_F. */
    static final double TORCH_EPS = 1e-7;
    /**
     * Turbo-Muon's four (a, b, c) triples after AOL pre-scaling: thib-s/flash-newton-schulz
     * {@code newton_schulz_triton_aol}, also microsoft/dion {@code newton_schulz_triton_fast}.
     */
    static final double[][] TURBO_MUON_COEFFICIENTS = {
        {4.6051, -9.6552, 5.6769},
        {4.7505, -6.0861, 2.1790},
        {2.7763, -2.3190, 0.5523},
        {2.4231, -2.2861, 0.8193},
    };

    private VariantReference() {
    }

    // ------------------------------------------------------------------------------------ NorMuon

    /** NorMuon's normalized update U (rows × cols) and the new per-row second moment v (rows). */
    record NorMuonStep(double[] update, double[] state) {
    }

    /**
     * NorMuon's step after orthogonalization, as microsoft/dion {@code _normuon_normalization_core}
     * computes it for one matrix:
     * <pre>
     *   m_i  = mean_j O_ij²                      per row (output neuron) i
     *   v_i ← v_i + (1 − β2)·(m_i − v_i)         = β2·v_i + (1 − β2)·m_i
     *   Ô_ij = O_ij / (√v_i + eps)
     *   U    = Ô · ‖O‖_F / max(‖Ô‖_F, 1e-8)      the Frobenius norm (and RMS) of O is kept
     * </pre>
     * The scale-by-shape, the learning rate and the weight decay come afterwards.
     *
     * @param o     the orthogonalized update O, rows × cols
     * @param state v from the previous step, length rows (zeros at the first step)
     */
    static NorMuonStep norMuon(double[] o, int rows, int cols, double[] state, double beta2, double eps) {
        require(o.length == rows * cols, "o has " + o.length + " values, not rows·cols = " + rows * cols);
        require(state.length == rows, "state has " + state.length + " values, not rows = " + rows);
        double normO = frobenius(o);
        double[] v = new double[rows];
        double[] normalized = new double[o.length];
        for (int i = 0; i < rows; i++) {
            double sumSq = 0;
            for (int j = 0; j < cols; j++) {
                double x = o[i * cols + j];
                sumSq += x * x;
            }
            double mean = sumSq / cols;
            v[i] = state[i] + (1 - beta2) * (mean - state[i]);
            double denominator = Math.sqrt(v[i]) + eps;
            for (int j = 0; j < cols; j++) {
                normalized[i * cols + j] = o[i * cols + j] / denominator;
            }
        }
        double factor = normO / Math.max(frobenius(normalized), NORMUON_NORM_FLOOR);
        for (int k = 0; k < normalized.length; k++) {
            normalized[k] *= factor;
        }
        return new NorMuonStep(normalized, v);
    }

    /**
     * NorMuon on {@code count} stacked rows × cols matrices (experts, or the heads of a per-head
     * split): each matrix has its own rows of state and its own Frobenius rescale, as dion's
     * stacked form (norms over the last two dimensions) and modded-nanogpt's parameter banks do.
     *
     * @param o     count × rows × cols
     * @param state count × rows
     */
    static NorMuonStep norMuonStacked(double[] o, int count, int rows, int cols, double[] state, double beta2,
            double eps) {
        require(o.length == count * rows * cols, "o has " + o.length + " values, not count·rows·cols");
        require(state.length == count * rows, "state has " + state.length + " values, not count·rows");
        double[] update = new double[o.length];
        double[] v = new double[state.length];
        int size = rows * cols;
        for (int e = 0; e < count; e++) {
            double[] oe = Arrays.copyOfRange(o, e * size, (e + 1) * size);
            double[] se = Arrays.copyOfRange(state, e * rows, (e + 1) * rows);
            NorMuonStep step = norMuon(oe, rows, cols, se, beta2, eps);
            System.arraycopy(step.update(), 0, update, e * size, size);
            System.arraycopy(step.state(), 0, v, e * rows, rows);
        }
        return new NorMuonStep(update, v);
    }

    /**
     * The NorMuon paper's alternative to the Frobenius-keeping rescale (arXiv 2510.05491, Algorithm 1):
     * the normalized update is scaled to a fixed RMS ({@code 0.2} there, η̂ = 0.2·η·√(mn)/‖Ô‖_F),
     * U = Ô · targetRms·√(rows·cols)/‖Ô‖_F.
     */
    static double[] scaleToRms(double[] normalized, double targetRms) {
        double factor = targetRms * Math.sqrt(normalized.length) / frobenius(normalized);
        double[] u = new double[normalized.length];
        for (int k = 0; k < u.length; k++) {
            u[k] = normalized[k] * factor;
        }
        return u;
    }

    // ---------------------------------------------------------------------- cautious weight decay

    /**
     * The cautious mask: 1 where U_ij·W_ij ≥ 0 (update and parameter agree in sign, or either is zero),
     * 0 where they disagree. Cautious Weight Decay (arXiv 2510.12402, Algorithm 1): 𝕀(u ⊙ x ≥ 0);
     * microsoft/dion {@code muon_update_post_orthogonalize}: min(sign(X·U) + 1, 1); modded-nanogpt
     * PR #154: {@code (v_chunk * param_chunk) >= 0}. U is the update before the learning rate.
     */
    static boolean[] cautiousMask(double[] w, double[] u) {
        require(w.length == u.length, "w has " + w.length + " values and u " + u.length);
        boolean[] mask = new boolean[w.length];
        for (int k = 0; k < w.length; k++) {
            mask[k] = u[k] * w[k] >= 0;
        }
        return mask;
    }

    /**
     * One weight update with cautious decoupled decay, as microsoft/dion applies it:
     * W ← W − lr·wd·[U⊙W ≥ 0]⊙W − lr·s·U, the mask taken on W before the step, the decay with the
     * unscaled lr, the update with lr·s.
     *
     * @param w the weight before the step
     * @param u the update direction (O, or NorMuon's normalized update), before lr and s
     */
    static double[] cautiousStep(double[] w, double[] u, double lr, double weightDecay, double scale) {
        boolean[] mask = cautiousMask(w, u);
        double[] next = new double[w.length];
        for (int k = 0; k < w.length; k++) {
            double decay = mask[k] ? lr * weightDecay * w[k] : 0;
            next[k] = w[k] - decay - lr * scale * u[k];
        }
        return next;
    }

    // ------------------------------------------------------------------------------------ QK-clip

    /** The clipped query and key weights, and the factor γ each query head's logits were multiplied by. */
    record QkClip(double[] wq, double[] wk, double[] gamma) {
    }

    /**
     * QK-clip for multi-head or grouped-query attention, after the optimizer step (Kimi K2 report,
     * arXiv 2507.20534, Algorithm 1; grouping as NVIDIA Megatron-LM {@code SelfAttention.clip_qk}).
     * Query heads h = g·(H/Hkv) … (g+1)·(H/Hkv) − 1 share key head g. For each key group g:
     * <pre>
     *   S_g = max over the group's query heads of S_h
     *   if S_g &gt; τ:  γ_g = τ / S_g;  rows of W_q for every head in g × √γ_g;  rows of W_k for head g × √γ_g
     * </pre>
     * With Hkv = H every group is one head and this is the report's per-head rule. Groups with
     * S_g ≤ τ are left bit-identical.
     *
     * @param wq        H·D × cols, head h in rows h·D … h·D + D − 1
     * @param wk        Hkv·D × cols
     * @param maxLogits S_h per query head: the largest pre-softmax logit q·k/√D over the step's batch
     */
    static QkClip qkClip(double[] wq, double[] wk, int headCount, int kvHeadCount, int headDim, int cols,
            double[] maxLogits, double tau) {
        require(headCount % kvHeadCount == 0, "headCount " + headCount + " is not a multiple of kvHeadCount "
                + kvHeadCount);
        require(wq.length == headCount * headDim * cols, "wq has " + wq.length + " values, not H·D·cols");
        require(wk.length == kvHeadCount * headDim * cols, "wk has " + wk.length + " values, not Hkv·D·cols");
        require(maxLogits.length == headCount, "maxLogits has " + maxLogits.length + " values, not H");
        require(tau > 0, "tau must be positive: " + tau);
        double[] q = wq.clone();
        double[] k = wk.clone();
        double[] gamma = new double[headCount];
        Arrays.fill(gamma, 1.0);
        int group = headCount / kvHeadCount;
        int block = headDim * cols;
        for (int g = 0; g < kvHeadCount; g++) {
            double s = Double.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                s = Math.max(s, maxLogits[h]);
            }
            if (!(s > tau)) {
                continue;
            }
            double factor = Math.sqrt(tau / s);
            for (int h = g * group; h < (g + 1) * group; h++) {
                gamma[h] = tau / s;
                for (int x = h * block; x < (h + 1) * block; x++) {
                    q[x] *= factor;
                }
            }
            for (int x = g * block; x < (g + 1) * block; x++) {
                k[x] *= factor;
            }
        }
        return new QkClip(q, k, gamma);
    }

    /** QK-clip's result for multi-head latent attention; the shared rotary key projection is not touched. */
    record QkClipLatent(double[] wq, double[] wkContent, double[] gamma) {
    }

    /**
     * QK-clip for multi-head latent attention (Kimi K2 report, Algorithm 1; Megatron-LM
     * {@code MLASelfAttention.clip_qk} with α = ½). Each query head has content rows (dc) then rotary
     * rows (dr); each head has its own content-key rows; the rotary key (dr rows) is shared by all heads.
     * For every head with S_h &gt; τ, γ = τ/S_h: the head's query content rows × √γ, its query rotary
     * rows × γ, its key content rows × √γ; the shared rotary key is left alone, so one head's clip
     * does not change the others' logits.
     *
     * @param wq        H·(dc + dr) × queryCols
     * @param wkContent H·dc × keyCols (the key up-projection's key rows)
     */
    static QkClipLatent qkClipLatent(double[] wq, double[] wkContent, int headCount, int contentDim, int ropeDim,
            int queryCols, int keyCols, double[] maxLogits, double tau) {
        require(wq.length == headCount * (contentDim + ropeDim) * queryCols, "wq has " + wq.length
                + " values, not H·(dc+dr)·queryCols");
        require(wkContent.length == headCount * contentDim * keyCols, "wkContent has " + wkContent.length
                + " values, not H·dc·keyCols");
        require(maxLogits.length == headCount, "maxLogits has " + maxLogits.length + " values, not H");
        double[] q = wq.clone();
        double[] k = wkContent.clone();
        double[] gamma = new double[headCount];
        Arrays.fill(gamma, 1.0);
        int qBlock = (contentDim + ropeDim) * queryCols;
        for (int h = 0; h < headCount; h++) {
            if (!(maxLogits[h] > tau)) {
                continue;
            }
            double g = tau / maxLogits[h];
            double root = Math.sqrt(g);
            gamma[h] = g;
            for (int x = 0; x < contentDim * queryCols; x++) {
                q[h * qBlock + x] *= root;
            }
            for (int x = contentDim * queryCols; x < qBlock; x++) {
                q[h * qBlock + x] *= g;
            }
            for (int x = h * contentDim * keyCols; x < (h + 1) * contentDim * keyCols; x++) {
                k[x] *= root;
            }
        }
        return new QkClipLatent(q, k, gamma);
    }

    /**
     * The largest pre-softmax logit per query head, S_h = max over (i, j) of q_i·k_j / √D with
     * q = W_q x, k = W_k x for the tokens x of one sequence (j ≤ i when causal); the query head h
     * uses key head h / (H/Hkv).
     *
     * @param x tokens × cols
     */
    static double[] maxLogits(double[] x, int tokens, int cols, double[] wq, double[] wk, int headCount,
            int kvHeadCount, int headDim, boolean causal) {
        double[] q = multiplyByTranspose(x, tokens, cols, wq, headCount * headDim);
        double[] k = multiplyByTranspose(x, tokens, cols, wk, kvHeadCount * headDim);
        int group = headCount / kvHeadCount;
        double[] max = new double[headCount];
        for (int h = 0; h < headCount; h++) {
            int g = h / group;
            double best = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < tokens; i++) {
                for (int j = 0; j < (causal ? i + 1 : tokens); j++) {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) {
                        dot += q[i * headCount * headDim + h * headDim + d] * k[j * kvHeadCount * headDim + g * headDim + d];
                    }
                    best = Math.max(best, dot / Math.sqrt(headDim));
                }
            }
            max[h] = best;
        }
        return max;
    }

    /**
     * The largest logit per head for multi-head latent attention without rotation (rotary embeddings
     * rotate q^R and k^R by orthogonal maps, which commute with scaling them): per head h,
     * q_i = [Wq_h^C x_i; Wq_h^R x_i], k_j = [Wk_h^C c_j; Wk^R x_j], logit = q_i·k_j / √(dc + dr).
     *
     * @param x      tokens × queryCols (input of the query projection and of the shared rotary key)
     * @param latent tokens × keyCols (the compressed key-value latent c)
     * @param wkRope dr × queryCols, shared by all heads
     */
    static double[] maxLogitsLatent(double[] x, double[] latent, int tokens, int queryCols, int keyCols, double[] wq,
            double[] wkContent, double[] wkRope, int headCount, int contentDim, int ropeDim, boolean causal) {
        int qDim = contentDim + ropeDim;
        double[] q = multiplyByTranspose(x, tokens, queryCols, wq, headCount * qDim);
        double[] kc = multiplyByTranspose(latent, tokens, keyCols, wkContent, headCount * contentDim);
        double[] kr = multiplyByTranspose(x, tokens, queryCols, wkRope, ropeDim);
        double[] max = new double[headCount];
        for (int h = 0; h < headCount; h++) {
            double best = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < tokens; i++) {
                for (int j = 0; j < (causal ? i + 1 : tokens); j++) {
                    double dot = 0;
                    for (int d = 0; d < contentDim; d++) {
                        dot += q[i * headCount * qDim + h * qDim + d] * kc[j * headCount * contentDim + h * contentDim + d];
                    }
                    for (int d = 0; d < ropeDim; d++) {
                        dot += q[i * headCount * qDim + h * qDim + contentDim + d] * kr[j * ropeDim + d];
                    }
                    best = Math.max(best, dot / Math.sqrt(qDim));
                }
            }
            max[h] = best;
        }
        return max;
    }

    // ----------------------------------------------------------------- per-head orthogonalization

    /**
     * Per-head orthogonalization: U (H·D × cols) seen as H blocks of D × cols, each put through
     * {@link Float64Reference#newtonSchulz} alone (microsoft/dion {@code num_heads}; DeepSpeed
     * {@code _per_head_orthogonalize}). The scale-by-shape then uses the block's shape D × cols.
     */
    static double[] perHeadNewtonSchulz(double[] u, int headCount, int headDim, int cols, int steps, double eps) {
        require(u.length == headCount * headDim * cols, "u has " + u.length + " values, not H·D·cols");
        double[] o = new double[u.length];
        int block = headDim * cols;
        for (int h = 0; h < headCount; h++) {
            double[] head = Arrays.copyOfRange(u, h * block, (h + 1) * block);
            System.arraycopy(Float64Reference.newtonSchulz(head, headDim, cols, steps, eps), 0, o, h * block, block);
        }
        return o;
    }

    // ---------------------------------------------------------------- Gram Newton–Schulz and AOL

    /**
     * Gram Newton–Schulz (Dao-AILab/gram-newton-schulz {@code GramNewtonSchulz._gram_newton_schulz};
     * DeepSpeed {@code zeropower_via_gram_newtonschulz}), in float64. On X (m × n, m ≤ n, normalized by
     * ‖G‖_F + eps) it iterates on the m × m matrices R = X·Xᵀ and Q (X_t = Q_t·X_0) instead of X:
     * <pre>
     *   Z = b·R + c·R²;  Q ← Q·(Z + aI)  (Q = Z + aI after a start);  R ← (Z + aI)·R·(Z + aI)
     * </pre>
     * and "restarts" before step r for each r in {@code restartBefore} (X ← Q·X, R ← X·Xᵀ, Q ← I).
     * In exact arithmetic it equals the standard iteration with the same coefficients.
     *
     * @param coefficients one (a, b, c) per step
     */
    static double[] gramNewtonSchulz(double[] g, int rows, int cols, double[][] coefficients, int[] restartBefore,
            double eps) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = transposed ? Float64Reference.transpose(g, rows, cols) : g.clone();
        scaleInPlace(x, 1 / (frobenius(x) + eps));
        double[] r = multiplyByTranspose(x, m, n, x, m);
        double[] q = null;
        for (int t = 0; t < coefficients.length; t++) {
            double a = coefficients[t][0];
            double b = coefficients[t][1];
            double c = coefficients[t][2];
            if (t > 0 && contains(restartBefore, t)) {
                x = multiply(q, m, m, x, n);
                r = multiplyByTranspose(x, m, n, x, m);
                q = null;
            }
            double[] z = multiply(r, m, m, r, m);
            for (int k = 0; k < z.length; k++) {
                z[k] = b * r[k] + c * z[k];
            }
            double[] zPlusA = z.clone();
            for (int i = 0; i < m; i++) {
                zPlusA[i * m + i] += a;
            }
            q = q == null ? zPlusA : multiply(q, m, m, zPlusA, m);
            r = multiply(zPlusA, m, m, multiply(r, m, m, zPlusA, m), m);
        }
        double[] out = q == null ? x : multiply(q, m, m, x, n);
        return transposed ? Float64Reference.transpose(out, m, n) : out;
    }

    /**
     * AOL pre-scaling (Turbo-Muon, arXiv 2512.04632; after Prach and Lampert, arXiv 2208.03160), in
     * place of the Frobenius normalization: on X (m × n, m ≤ n), A = X·Xᵀ,
     * s_i = 1/√max(Σ_j |A_ij|, eps), X ← diag(s)·X. Guarantees ‖diag(s)·X‖₂ ≤ 1. Returns the scaled
     * X in the m × n orientation.
     */
    static double[] aolPrescale(double[] x, int m, int n, double eps) {
        double[] a = multiplyByTranspose(x, m, n, x, m);
        double[] scaled = new double[x.length];
        for (int i = 0; i < m; i++) {
            double sum = 0;
            for (int j = 0; j < m; j++) {
                sum += Math.abs(a[i * m + j]);
            }
            double s = 1 / Math.sqrt(Math.max(sum, eps));
            for (int j = 0; j < n; j++) {
                scaled[i * n + j] = s * x[i * n + j];
            }
        }
        return scaled;
    }

    /**
     * Turbo-Muon's Newton–Schulz: AOL pre-scaling (no Frobenius normalization), then one standard
     * quintic step per (a, b, c) in {@code coefficients} (four with {@link #TURBO_MUON_COEFFICIENTS}).
     */
    static double[] aolNewtonSchulz(double[] g, int rows, int cols, double[][] coefficients, double eps) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = aolPrescale(transposed ? Float64Reference.transpose(g, rows, cols) : g, m, n, eps);
        for (double[] k : coefficients) {
            double[] a = multiplyByTranspose(x, m, n, x, m);
            double[] b = multiply(a, m, m, a, m);
            for (int i = 0; i < b.length; i++) {
                b[i] = k[1] * a[i] + k[2] * b[i];
            }
            double[] bx = multiply(b, m, m, x, n);
            for (int i = 0; i < bx.length; i++) {
                bx[i] += k[0] * x[i];
            }
            x = bx;
        }
        return transposed ? Float64Reference.transpose(x, m, n) : x;
    }

    // ------------------------------------------------------- torch.optim.Muon bfloat16 emulation

    /**
     * torch.optim.Muon's Newton–Schulz ({@code _zeropower_via_newtonschulz}, torch/optim/_muon.py, the
     * released form with {@code torch.addmm}) with its bfloat16 arithmetic emulated: every tensor is
     * bfloat16; a product accumulates its exact products in float32 (emulated here by a float64 sum
     * rounded to float32), the addmm epilogue α·(product) + β·C is float32 arithmetic, and the result is
     * rounded once to bfloat16 (nearest, ties to even).
     * <pre>
     *   X = bf16(G), transposed if rows &gt; cols
     *   ν = bf16(‖X‖_F accumulated in float32), then max(ν, bf16(1e-7));   X = bf16(X / ν)
     *   repeat: A = bf16(X·Xᵀ);  B = bf16(b·A + c·(A·A));  X = bf16(a·X + B·X)
     * </pre>
     * with a, b, c the float32 values of 3.4445, −4.7750, 2.0315.
     *
     * @param g the float32 gradient (or momentum), rows × cols
     * @return bfloat16 values, rows × cols
     */
    static double[] torchMuonNewtonSchulz(float[] g, int rows, int cols, int steps) {
        float a = (float) Float64Reference.A;
        float b = (float) Float64Reference.B;
        float c = (float) Float64Reference.C;
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        float[] x = new float[m * n];
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < cols; col++) {
                float v = BFloat16.round(g[r * cols + col]);
                if (transposed) {
                    x[col * n + r] = v;
                } else {
                    x[r * n + col] = v;
                }
            }
        }
        double sumSq = 0;
        for (float v : x) {
            sumSq += (double) v * v;
        }
        float norm = BFloat16.round((float) Math.sqrt(sumSq));
        norm = Math.max(norm, BFloat16.round((float) TORCH_EPS));
        for (int k = 0; k < x.length; k++) {
            x[k] = BFloat16.round(x[k] / norm);
        }
        for (int s = 0; s < steps; s++) {
            float[] gram = new float[m * m];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < m; j++) {
                    double sum = 0;
                    for (int k = 0; k < n; k++) {
                        sum += (double) x[i * n + k] * x[j * n + k];
                    }
                    gram[i * m + j] = BFloat16.round((float) sum);
                }
            }
            float[] update = new float[m * m];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < m; j++) {
                    double sum = 0;
                    for (int k = 0; k < m; k++) {
                        sum += (double) gram[i * m + k] * gram[k * m + j];
                    }
                    update[i * m + j] = BFloat16.round(b * gram[i * m + j] + c * (float) sum);
                }
            }
            float[] next = new float[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int k = 0; k < m; k++) {
                        sum += (double) update[i * m + k] * x[k * n + j];
                    }
                    next[i * n + j] = BFloat16.round(a * x[i * n + j] + (float) sum);
                }
            }
            x = next;
        }
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < cols; col++) {
                out[r * cols + col] = transposed ? x[col * n + r] : x[r * n + col];
            }
        }
        return out;
    }

    // ------------------------------------------------------------------------------- linear algebra

    static double frobenius(double[] x) {
        double sum = 0;
        for (double v : x) {
            sum += v * v;
        }
        return Math.sqrt(sum);
    }

    /** P (rowsP × inner) times Q (inner × colsQ). */
    static double[] multiply(double[] p, int rowsP, int inner, double[] q, int colsQ) {
        double[] out = new double[rowsP * colsQ];
        for (int i = 0; i < rowsP; i++) {
            for (int k = 0; k < inner; k++) {
                double pik = p[i * inner + k];
                for (int j = 0; j < colsQ; j++) {
                    out[i * colsQ + j] += pik * q[k * colsQ + j];
                }
            }
        }
        return out;
    }

    /** P (rowsP × inner) times Qᵀ, Q being rowsQ × inner. */
    static double[] multiplyByTranspose(double[] p, int rowsP, int inner, double[] q, int rowsQ) {
        double[] out = new double[rowsP * rowsQ];
        for (int i = 0; i < rowsP; i++) {
            for (int j = 0; j < rowsQ; j++) {
                double sum = 0;
                for (int k = 0; k < inner; k++) {
                    sum += p[i * inner + k] * q[j * inner + k];
                }
                out[i * rowsQ + j] = sum;
            }
        }
        return out;
    }

    /**
     * Singular values of a rows × cols matrix, largest first: square roots of the eigenvalues of the
     * smaller Gram matrix, found with the cyclic Jacobi method.
     */
    static double[] singularValues(double[] x, int rows, int cols) {
        double[] gram = rows <= cols
                ? multiplyByTranspose(x, rows, cols, x, rows)
                : multiplyByTranspose(Float64Reference.transpose(x, rows, cols), cols, rows,
                        Float64Reference.transpose(x, rows, cols), cols);
        int n = Math.min(rows, cols);
        double[] a = gram.clone();
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0;
            for (int p = 0; p < n; p++) {
                for (int q = p + 1; q < n; q++) {
                    off += a[p * n + q] * a[p * n + q];
                }
            }
            if (off < 1e-30) {
                break;
            }
            for (int p = 0; p < n; p++) {
                for (int q = p + 1; q < n; q++) {
                    double apq = a[p * n + q];
                    if (apq == 0) {
                        continue;
                    }
                    double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) {
                        t = 1;
                    }
                    double cos = 1 / Math.sqrt(t * t + 1);
                    double sin = t * cos;
                    for (int k = 0; k < n; k++) {
                        double akp = a[k * n + p];
                        double akq = a[k * n + q];
                        a[k * n + p] = cos * akp - sin * akq;
                        a[k * n + q] = sin * akp + cos * akq;
                    }
                    for (int k = 0; k < n; k++) {
                        double apk = a[p * n + k];
                        double aqk = a[q * n + k];
                        a[p * n + k] = cos * apk - sin * aqk;
                        a[q * n + k] = sin * apk + cos * aqk;
                    }
                }
            }
        }
        double[] sv = new double[n];
        for (int i = 0; i < n; i++) {
            sv[i] = Math.sqrt(Math.max(0, a[i * n + i]));
        }
        Arrays.sort(sv);
        for (int i = 0; i < n / 2; i++) {
            double t = sv[i];
            sv[i] = sv[n - 1 - i];
            sv[n - 1 - i] = t;
        }
        return sv;
    }

    private static void scaleInPlace(double[] x, double factor) {
        for (int k = 0; k < x.length; k++) {
            x[k] *= factor;
        }
    }

    private static boolean contains(int[] values, int value) {
        for (int v : values) {
            if (v == value) {
                return true;
            }
        }
        return false;
    }

    private static void require(boolean condition, String message) {
        if (!condition) {
            throw new IllegalArgumentException(message);
        }
    }
}
