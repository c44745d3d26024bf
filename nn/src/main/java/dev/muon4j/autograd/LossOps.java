package dev.muon4j.autograd;

import java.util.Arrays;

/** Softmax cross-entropy, fused: the probabilities are kept for backward. */
final class LossOps {
    private LossOps() {
    }

    /**
     * Mean over rows of {@code −log softmax(logits)[target]}, logits (N, V), targets N ints in
     * [0, V). Backward: {@code dlogits += (softmax − onehot(target)) · dloss / N}.
     */
    static Tensor crossEntropy(Graph g, Tensor logits, int[] targets) {
        int n = logits.rows();
        int vocab = logits.cols();
        if (targets.length != n) {
            throw new IllegalArgumentException("crossEntropy: " + targets.length + " targets for " + n + " rows of logits "
                    + Arrays.toString(logits.shape()));
        }
        for (int i = 0; i < n; i++) {
            if (targets[i] < 0 || targets[i] >= vocab) {
                throw new IllegalArgumentException("crossEntropy: target " + targets[i] + " at row " + i + " is outside [0, " + vocab + ")");
            }
        }
        float[] probs = g.scratch(n * vocab);
        double[] rowLoss = new double[n];
        g.parallel().forRows(n, 16, (from, to) -> {
            for (int r = from; r < to; r++) {
                int off = r * vocab;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < vocab; j++) {
                    max = Math.max(max, logits.data[off + j]);
                }
                System.arraycopy(logits.data, off, probs, off, vocab);
                float sum = (float) ExactBits.expShiftInPlace(probs, off, vocab, max);
                float inv = 1f / sum;
                for (int j = 0; j < vocab; j++) {
                    probs[off + j] *= inv;
                }
                rowLoss[r] = Math.log(sum) + max - logits.data[off + targets[r]];
            }
        });
        double total = 0;
        for (double l : rowLoss) {
            total += l;
        }
        Tensor loss = g.output(g.needsGrad(logits), 1);
        loss.data[0] = (float) (total / n);
        if (loss.requiresGrad()) {
            int[] saved = targets.clone();
            g.record(loss, () -> {
                float scale = g.grad(loss)[0] / n;
                float[] dLogits = g.grad(logits);
                g.parallel().forRows(n, 16, (from, to) -> {
                    for (int r = from; r < to; r++) {
                        int off = r * vocab;
                        for (int j = 0; j < vocab; j++) {
                            dLogits[off + j] += probs[off + j] * scale;
                        }
                        dLogits[off + saved[r]] -= scale;
                    }
                });
            });
        }
        return loss;
    }
}
