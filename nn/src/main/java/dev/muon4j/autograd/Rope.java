package dev.muon4j.autograd;

/**
 * Rotary position embedding (Su et al. 2021) in the "rotate half" layout of GPT-NeoX and Hugging
 * Face's Llama: within each head of D channels, channel i (i &lt; D/2) is paired with i + D/2 and the
 * pair at position t is rotated by the angle {@code t·θ^(−2i/D)}.
 */
public final class Rope {
    private final int headDim;
    private final int maxTime;
    private final float[] cos; // (maxTime, headDim/2)
    private final float[] sin; // (maxTime, headDim/2)

    public Rope(int headDim, int maxTime, double theta) {
        if (headDim < 2 || headDim % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head dimension, got " + headDim);
        }
        if (maxTime < 1 || !(theta > 1)) {
            throw new IllegalArgumentException("RoPE needs maxTime >= 1 and theta > 1, got " + maxTime + ", " + theta);
        }
        this.headDim = headDim;
        this.maxTime = maxTime;
        int half = headDim / 2;
        cos = new float[maxTime * half];
        sin = new float[maxTime * half];
        for (int t = 0; t < maxTime; t++) {
            for (int i = 0; i < half; i++) {
                double angle = t * Math.pow(theta, -2.0 * i / headDim);
                cos[t * half + i] = (float) Math.cos(angle);
                sin[t * half + i] = (float) Math.sin(angle);
            }
        }
    }

    public int headDim() {
        return headDim;
    }

    /** x (B·T, heads·D) → rotated copy; rows are positions t = row mod T of batch entries. */
    Tensor apply(Graph g, Tensor x, int time) {
        int width = x.cols();
        if (width % headDim != 0) {
            throw new IllegalArgumentException("rope: width " + width + " is not a multiple of the head dimension " + headDim);
        }
        if (time > maxTime || time < 1 || x.rows() % time != 0) {
            throw new IllegalArgumentException("rope: " + x.rows() + " rows are not whole sequences of " + time
                    + " positions (table holds " + maxTime + ")");
        }
        int rows = x.rows();
        Tensor y = g.output(g.needsGrad(x), x.shape());
        g.parallel().forRows(rows, 64, (from, to) -> rotate(x.data, y.data, from, to, width, time, false));
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                float[] dx = g.grad(x);
                g.parallel().forRows(rows, 64, (from, to) -> rotateAdd(dy, dx, from, to, width, time));
            });
        }
        return y;
    }

    /** out = R(t)·in (or R(t)ᵀ·in when inverse) for rows [from, to). */
    private void rotate(float[] in, float[] out, int from, int to, int width, int time, boolean inverse) {
        int half = headDim / 2;
        float sign = inverse ? -1f : 1f;
        for (int row = from; row < to; row++) {
            int t = row % time;
            int table = t * half;
            for (int h = 0; h < width; h += headDim) {
                int base = row * width + h;
                for (int i = 0; i < half; i++) {
                    float c = cos[table + i];
                    float s = sign * sin[table + i];
                    float x1 = in[base + i];
                    float x2 = in[base + half + i];
                    out[base + i] = x1 * c - x2 * s;
                    out[base + half + i] = x2 * c + x1 * s;
                }
            }
        }
    }

    /** grad += R(t)ᵀ·dy for rows [from, to). */
    private void rotateAdd(float[] dy, float[] grad, int from, int to, int width, int time) {
        int half = headDim / 2;
        for (int row = from; row < to; row++) {
            int t = row % time;
            int table = t * half;
            for (int h = 0; h < width; h += headDim) {
                int base = row * width + h;
                for (int i = 0; i < half; i++) {
                    float c = cos[table + i];
                    float s = sin[table + i];
                    float d1 = dy[base + i];
                    float d2 = dy[base + half + i];
                    grad[base + i] += d1 * c + d2 * s;
                    grad[base + half + i] += d2 * c - d1 * s;
                }
            }
        }
    }
}
