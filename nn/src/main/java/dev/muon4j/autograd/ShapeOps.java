package dev.muon4j.autograd;

import java.util.Arrays;

/** Shape-only operations: views over the same data. */
final class ShapeOps {
    private ShapeOps() {
    }

    /**
     * The same values under another shape of the same size: a zero-copy view over x's data array.
     * The view has its own gradient, which backward adds into x's.
     */
    static Tensor reshape(Graph g, Tensor x, int... shape) {
        int size = Tensor.sizeOf(shape);
        if (size != x.size()) {
            throw new IllegalArgumentException("reshape: cannot view " + Arrays.toString(x.shape()) + " (" + x.size()
                    + " elements) as " + Arrays.toString(shape) + " (" + size + " elements)");
        }
        Tensor y = g.view(x, g.needsGrad(x), shape);
        if (y.requiresGrad()) {
            g.record(y, () -> ElementwiseOps.accumulate(g, g.grad(x), g.grad(y), size));
        }
        return y;
    }
}
