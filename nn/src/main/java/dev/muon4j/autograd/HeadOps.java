package dev.muon4j.autograd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Column operations on tensors whose rows are H equal blocks of columns, one block per head: what
 * Multi-head Latent Attention needs to take each head's query apart into its content and rotary
 * parts, to give every head the one shared rotary key, and to put a head's parts back together.
 * Each forward copies contiguous runs of columns ({@link System#arraycopy}); each backward adds the
 * same runs back. Shape letters: N rows, H heads, W a head's width in the input.
 */
final class HeadOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Rows per parallel part: a row is a few hundred floats of copying. */
    private static final int GRAIN = 64;

    private HeadOps() {
    }

    /**
     * y (N, H·width) = columns [from, from + width) of each of the H blocks of x (N, H·W), W = x width / H;
     * with H = 1 a plain column slice. Backward adds dy into those columns of dx.
     */
    static Tensor sliceHeads(Graph g, Tensor x, int heads, int from, int width) {
        if (heads < 1 || x.cols() % heads != 0) {
            throw new IllegalArgumentException("slice heads: width " + x.cols() + " is not " + heads + " heads of equal width");
        }
        int w = x.cols() / heads;
        if (from < 0 || width < 1 || from + width > w) {
            throw new IllegalArgumentException("slice heads: columns [" + from + ", " + (from + width) + ") outside a head of width " + w);
        }
        int n = x.rows();
        int inWidth = x.cols();
        int outWidth = heads * width;
        Tensor y = g.output(g.needsGrad(x), n, outWidth);
        g.parallel().forRows(n, GRAIN, (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                for (int h = 0; h < heads; h++) {
                    System.arraycopy(x.data, r * inWidth + h * w + from, y.data, r * outWidth + h * width, width);
                }
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                g.parallel().forRows(n, GRAIN, (lo, hi) -> {
                    for (int r = lo; r < hi; r++) {
                        for (int h = 0; h < heads; h++) {
                            addInto(dx, r * inWidth + h * w + from, dy, r * outWidth + h * width, width);
                        }
                    }
                });
            });
        }
        return y;
    }

    /**
     * y (N, H·(Wa + Wb)) whose head h is [a_h, b_h], for a (N, H·Wa) and b (N, H·Wb): each head's
     * columns of a followed by its columns of b. Backward splits dy back into da and db.
     */
    static Tensor concatHeads(Graph g, Tensor a, Tensor b, int heads) {
        if (heads < 1 || a.cols() % heads != 0 || b.cols() % heads != 0) {
            throw new IllegalArgumentException("concat heads: widths " + a.cols() + " and " + b.cols() + " are not " + heads
                    + " heads of equal width");
        }
        if (a.rows() != b.rows()) {
            throw new IllegalArgumentException("concat heads: " + a.rows() + " and " + b.rows() + " rows");
        }
        int n = a.rows();
        int wa = a.cols() / heads;
        int wb = b.cols() / heads;
        int aWidth = a.cols();
        int bWidth = b.cols();
        int outWidth = heads * (wa + wb);
        Tensor y = g.output(g.needsGrad(a, b), n, outWidth);
        g.parallel().forRows(n, GRAIN, (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                for (int h = 0; h < heads; h++) {
                    int to = r * outWidth + h * (wa + wb);
                    System.arraycopy(a.data, r * aWidth + h * wa, y.data, to, wa);
                    System.arraycopy(b.data, r * bWidth + h * wb, y.data, to + wa, wb);
                }
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] da = a.requiresGrad ? g.grad(a) : null;
                float[] db = b.requiresGrad ? g.grad(b) : null;
                g.parallel().forRows(n, GRAIN, (lo, hi) -> {
                    for (int r = lo; r < hi; r++) {
                        for (int h = 0; h < heads; h++) {
                            int from = r * outWidth + h * (wa + wb);
                            if (da != null) {
                                addInto(da, r * aWidth + h * wa, dy, from, wa);
                            }
                            if (db != null) {
                                addInto(db, r * bWidth + h * wb, dy, from + wa, wb);
                            }
                        }
                    }
                });
            });
        }
        return y;
    }

    /** y (N, H·W) = x (N, W) repeated once per head. Backward: dx = Σ over heads of dy_h. */
    static Tensor repeatHeads(Graph g, Tensor x, int heads) {
        if (heads < 1) {
            throw new IllegalArgumentException("repeat heads: heads must be >= 1, got " + heads);
        }
        int n = x.rows();
        int w = x.cols();
        int outWidth = heads * w;
        Tensor y = g.output(g.needsGrad(x), n, outWidth);
        g.parallel().forRows(n, GRAIN, (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                for (int h = 0; h < heads; h++) {
                    System.arraycopy(x.data, r * w, y.data, r * outWidth + h * w, w);
                }
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                g.parallel().forRows(n, GRAIN, (lo, hi) -> {
                    for (int r = lo; r < hi; r++) {
                        for (int h = 0; h < heads; h++) {
                            addInto(dx, r * w, dy, r * outWidth + h * w, w);
                        }
                    }
                });
            });
        }
        return y;
    }

    /** target[to .. to+len) += source[from .. from+len). */
    private static void addInto(float[] target, int to, float[] source, int from, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector.fromArray(S, target, to + i).add(FloatVector.fromArray(S, source, from + i)).intoArray(target, to + i);
        }
        for (; i < len; i++) {
            target[to + i] += source[from + i];
        }
    }
}
