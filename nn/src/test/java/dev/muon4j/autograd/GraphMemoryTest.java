package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.muon4j.backend.VectorBackend;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Backward gives each intermediate gradient back to the pool once the operation that made the
 * tensor has sent it on, so a chain of operations holds two gradients at a time, not one per link.
 */
class GraphMemoryTest {
    private static final int LINKS = 10;
    private static final int N = 6;

    @Test
    void aChainHoldsTwoGradientsAtATime() {
        try (VectorBackend backend = new VectorBackend(1); Graph g = new Graph(backend)) {
            float[] data = {1.01f, 0.99f, -1.02f, 0.98f, 1.0f, -0.97f};
            float[] w = {0.5f, -1, 2, 0.25f, -3, 1.5f};
            for (int step = 0; step < 2; step++) {
                Tensor x = g.variable(data.clone(), 1, N);
                List<Tensor> links = new ArrayList<>();
                Tensor y = x;
                for (int i = 0; i < LINKS; i++) {
                    y = Ops.add(g, y, x); // y_{i+1} = y_i + x, so y_10 = 11·x and d(w·y_10)/dx = 11·w
                    links.add(y);
                }
                Tensor loss = Ops.linear(g, y, g.constant(w, 1, N));
                g.backward(loss);
                // forward: 10 links of N and the loss; backward at most a link's gradient and its input's at once
                assertEquals(LINKS * N + 1 + 2 * N, g.peakFloats(), "step " + step);
                float[] expected = new float[N];
                for (int i = 0; i < N; i++) {
                    expected[i] = 11 * w[i];
                }
                assertNotNull(x.grad(), "a variable keeps its gradient");
                assertArrayEquals(expected, x.grad(), 1e-5f);
                for (Tensor link : links) {
                    assertNull(link.grad(), "an intermediate gradient went back to the pool");
                }
                assertNull(loss.grad());
                g.reset();
            }
        }
    }

    @Test
    void aReleasedArrayIsReusedAndCannotBeGivenBackTwice() {
        BufferPool pool = new BufferPool();
        float[] a = pool.take(4);
        pool.giveBack(a);
        float[] b = pool.take(4);
        assertEquals(a, b);
        assertEquals(4, pool.peakFloats());
        pool.giveBack(b);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> pool.giveBack(b));
    }
}
