package dev.muon4j.cuda;

import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A small hybrid model's parameters for the optimizer tests: an embedding, a head, norms and biases
 * (AdamW), two layers of same-shape attention matrices (a batch of two per shape on the GPU), wide,
 * tall and square MLP matrices, and a stack of three experts; made twice alike from one seed, once
 * for the CPU optimizer and once for the GPU one.
 */
final class ModelParameters {
    private ModelParameters() {
    }

    static List<Parameter> make(long seed) {
        Random r = new Random(seed);
        List<Parameter> out = new ArrayList<>();
        out.add(param(r, "embed", ParamRole.EMBEDDING, 50, 32));
        for (int layer = 0; layer < 2; layer++) {
            String p = "layers." + layer + ".";
            out.add(param(r, p + "q_proj", ParamRole.HIDDEN_MATRIX, 64, 32));
            out.add(param(r, p + "o_proj", ParamRole.HIDDEN_MATRIX, 32, 64));
            out.add(param(r, p + "up", ParamRole.HIDDEN_MATRIX, 96, 32));
            out.add(param(r, p + "down", ParamRole.HIDDEN_MATRIX, 32, 96));
            out.add(param(r, p + "gate", ParamRole.HIDDEN_MATRIX, 32, 32));
            out.add(param(r, p + "norm", ParamRole.NORM, 32));
            out.add(param(r, p + "bias", ParamRole.BIAS, 96));
        }
        float[] experts = values(r, 3 * 48 * 32);
        out.add(Parameter.stackedMatrices("layers.1.experts", 3, 48, 32, experts, new float[experts.length]));
        out.add(param(r, "head", ParamRole.HEAD, 50, 32));
        return out;
    }

    private static float[] values(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian() * 0.05f;
        }
        return v;
    }

    private static Parameter param(Random r, String name, ParamRole role, int... shape) {
        int n = 1;
        for (int s : shape) {
            n *= s;
        }
        return Parameter.of(name, role, shape, values(r, n), new float[n]);
    }

    /** Fills every parameter's gradient from {@code r}, scaled by {@code scale}. */
    static void gradients(List<Parameter> params, Random r, float scale) {
        for (Parameter p : params) {
            float[] g = p.gradient();
            for (int i = 0; i < g.length; i++) {
                g[i] = (float) r.nextGaussian() * scale;
            }
        }
    }
}
