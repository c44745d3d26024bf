package dev.muon4j.autograd;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** Elementwise operations: add, multiply, SiLU and SwiGLU, on the Vector API, split over rows. */
final class ElementwiseOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Elements per parallel part below which a loop stays on one thread. */
    private static final int GRAIN = 1 << 15;

    private ElementwiseOps() {
    }

    private static void sameShape(String op, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new IllegalArgumentException(op + ": shapes differ: " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
    }

    /** y = a + b (same shape). */
    static Tensor add(Graph g, Tensor a, Tensor b) {
        sameShape("add", a, b);
        Tensor y = g.output(g.needsGrad(a, b), a.shape());
        int n = a.size();
        g.parallel().forRows(n, GRAIN, (from, to) -> {
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                FloatVector.fromArray(S, a.data, i).add(FloatVector.fromArray(S, b.data, i)).intoArray(y.data, i);
            }
            for (; i < to; i++) {
                y.data[i] = a.data[i] + b.data[i];
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                if (a.requiresGrad) {
                    accumulate(g, g.grad(a), dy, n);
                }
                if (b.requiresGrad) {
                    accumulate(g, g.grad(b), dy, n);
                }
            });
        }
        return y;
    }

    /** target += source over n elements. */
    static void accumulate(Graph g, float[] target, float[] source, int n) {
        g.parallel().forRows(n, GRAIN, (from, to) -> {
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                FloatVector.fromArray(S, target, i).add(FloatVector.fromArray(S, source, i)).intoArray(target, i);
            }
            for (; i < to; i++) {
                target[i] += source[i];
            }
        });
    }

    /** y = a ⊙ b (same shape). */
    static Tensor mul(Graph g, Tensor a, Tensor b) {
        sameShape("mul", a, b);
        Tensor y = g.output(g.needsGrad(a, b), a.shape());
        int n = a.size();
        g.parallel().forRows(n, GRAIN, (from, to) -> {
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                FloatVector.fromArray(S, a.data, i).mul(FloatVector.fromArray(S, b.data, i)).intoArray(y.data, i);
            }
            for (; i < to; i++) {
                y.data[i] = a.data[i] * b.data[i];
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] da = a.requiresGrad ? g.grad(a) : null;
                float[] db = b.requiresGrad ? g.grad(b) : null;
                g.parallel().forRows(n, GRAIN, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        if (da != null) {
                            da[i] += dy[i] * b.data[i];
                        }
                        if (db != null) {
                            db[i] += dy[i] * a.data[i];
                        }
                    }
                });
            });
        }
        return y;
    }

    /** y = silu(x) = x·σ(x). */
    static Tensor silu(Graph g, Tensor x) {
        Tensor y = g.output(g.needsGrad(x), x.shape());
        int n = x.size();
        float[] s = g.scratch(n); // σ(x), kept for backward
        g.parallel().forRows(n, GRAIN, (from, to) -> {
            ExactBits.sigmoid(x.data, s, from, to);
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                FloatVector.fromArray(S, x.data, i).mul(FloatVector.fromArray(S, s, i)).intoArray(y.data, i);
            }
            for (; i < to; i++) {
                y.data[i] = x.data[i] * s[i];
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                g.parallel().forRows(n, GRAIN, (from, to) -> {
                    int i = from;
                    for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                        FloatVector xv = FloatVector.fromArray(S, x.data, i);
                        FloatVector sv = FloatVector.fromArray(S, s, i);
                        // silu'(x) = σ(x)·(1 + x·(1 − σ(x)))
                        FloatVector d = sv.mul(xv.mul(sv.neg().add(1f)).add(1f));
                        FloatVector.fromArray(S, dy, i).fma(d, FloatVector.fromArray(S, dx, i)).intoArray(dx, i);
                    }
                    for (; i < to; i++) {
                        dx[i] += dy[i] * s[i] * (1f + x.data[i] * (1f - s[i]));
                    }
                });
            });
        }
        return y;
    }

    /** y = silu(gate) ⊙ up, the SwiGLU activation (same shapes). */
    static Tensor swiglu(Graph g, Tensor gate, Tensor up) {
        sameShape("swiglu", gate, up);
        Tensor y = g.output(g.needsGrad(gate, up), gate.shape());
        int n = gate.size();
        float[] s = g.scratch(n); // σ(gate), kept for backward
        g.parallel().forRows(n, GRAIN, (from, to) -> {
            ExactBits.sigmoid(gate.data, s, from, to);
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                FloatVector gv = FloatVector.fromArray(S, gate.data, i);
                gv.mul(FloatVector.fromArray(S, s, i)).mul(FloatVector.fromArray(S, up.data, i)).intoArray(y.data, i);
            }
            for (; i < to; i++) {
                y.data[i] = gate.data[i] * s[i] * up.data[i];
            }
        });
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dGate = gate.requiresGrad ? g.grad(gate) : null;
                float[] dUp = up.requiresGrad ? g.grad(up) : null;
                g.parallel().forRows(n, GRAIN, (from, to) -> {
                    int i = from;
                    if (dGate != null && dUp != null) {
                        for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
                            FloatVector gv = FloatVector.fromArray(S, gate.data, i);
                            FloatVector uv = FloatVector.fromArray(S, up.data, i);
                            FloatVector dyv = FloatVector.fromArray(S, dy, i);
                            FloatVector sv = FloatVector.fromArray(S, s, i);
                            FloatVector silu = gv.mul(sv);
                            FloatVector dSilu = sv.mul(gv.mul(sv.neg().add(1f)).add(1f));
                            dyv.mul(uv).fma(dSilu, FloatVector.fromArray(S, dGate, i)).intoArray(dGate, i);
                            dyv.fma(silu, FloatVector.fromArray(S, dUp, i)).intoArray(dUp, i);
                        }
                    }
                    for (; i < to; i++) {
                        float gv = gate.data[i];
                        float sv = s[i];
                        if (dGate != null) {
                            dGate[i] += dy[i] * up.data[i] * sv * (1f + gv * (1f - sv));
                        }
                        if (dUp != null) {
                            dUp[i] += dy[i] * gv * sv;
                        }
                    }
                });
            });
        }
        return y;
    }
}
