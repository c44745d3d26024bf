package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import org.junit.jupiter.api.Test;

/** {@link Ops#reshape}: a zero-copy view whose gradient flows back into its input. */
class ShapeOpsTest {
    @Test
    void reshapeIsAViewAndPassesGradientsBack() {
        try (VectorBackend backend = new VectorBackend(1); Graph g = new Graph(backend)) {
            float[] data = {1, 2, 3, 4, 5, 6};
            Tensor x = g.variable(data, 2, 3);
            Tensor y = Ops.reshape(g, x, 3, 2);
            assertArrayEquals(new int[] {3, 2}, y.shape());
            assertSame(data, y.data(), "reshape must not copy");
            assertTrue(y.requiresGrad());
            // loss = Σ y ⊙ w via a (1, 6) · (1, 6)ᵀ linear, through a second reshape
            float[] w = {0.5f, -1, 2, 0.25f, -3, 1.5f};
            Tensor loss = Ops.linear(g, Ops.reshape(g, Ops.mul(g, y, y), 1, 6), g.constant(w, 1, 6));
            g.backward(loss);
            float[] expected = new float[6];
            for (int i = 0; i < 6; i++) {
                expected[i] = 2 * data[i] * w[i];
            }
            assertArrayEquals(expected, x.grad(), 0f);

            Tensor c = g.constant(data, 6);
            Tensor cv = Ops.reshape(g, c, 1, 6, 1);
            assertFalse(cv.requiresGrad());
            assertNull(c.grad());
            assertThrows(IllegalArgumentException.class, () -> Ops.reshape(g, x, 7));
        }
    }
}
