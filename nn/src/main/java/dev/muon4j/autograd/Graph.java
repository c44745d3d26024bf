package dev.muon4j.autograd;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorApi;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Reverse-mode automatic differentiation over a tape. Operations (in {@link Ops}) compute their
 * result at once and, when an input needs a gradient, push their backward step onto the tape;
 * {@link #backward} runs the tape in reverse. Arrays of intermediate tensors come from a pool and
 * return to it at {@link #reset()}, so a training loop that resets after each step allocates
 * nothing once warm. An intermediate tensor's gradient goes back to the pool as soon as the
 * backward step of the operation that made it has run, so backward holds the gradients of only
 * the tensors between the step running and the ones already done (about one layer's), not one
 * per tensor of the pass; after {@link #backward} the gradients of intermediate tensors are gone
 * ({@link Tensor#grad()} is null), those of parameters and {@link #variable}s are kept.
 *
 * <p>Gradients accumulate: backward adds into each parameter's {@link Parameter#gradient()},
 * which the training loop zeroes when it wants to. Not thread-safe.
 */
public final class Graph implements AutoCloseable {
    private final Backend backend;
    private final Parallel parallel;
    private final BufferPool pool = new BufferPool();
    private final List<Step> tape = new ArrayList<>();
    private boolean recording = true;

    /**
     * A graph computing on {@code backend}.
     *
     * @throws IllegalStateException if this JVM lacks the Vector API, which the operations' kernels use
     */
    public Graph(Backend backend) {
        if (!VectorApi.present()) {
            throw new IllegalStateException("muon4j-nn computes on the Vector API: start Java with --add-modules "
                    + VectorApi.MODULE + " (muon4j-core's optimizer runs without it)");
        }
        this.backend = Objects.requireNonNull(backend, "backend");
        this.parallel = new Parallel(backend.threads());
    }

    public Backend backend() {
        return backend;
    }

    public Parallel parallel() {
        return parallel;
    }

    /** Turns recording of backward steps on or off (off: inference, nothing is kept for backward). */
    public void setRecording(boolean on) {
        this.recording = on;
    }

    public boolean isRecording() {
        return recording;
    }

    /** A leaf tensor over a parameter's own arrays; backward adds into its gradient. */
    public Tensor parameter(Parameter p) {
        return new Tensor(p.shape(), p.value(), p.gradient(), true, p);
    }

    /** A leaf tensor that needs no gradient (inputs, targets); the array is used, not copied. */
    public Tensor constant(float[] data, int... shape) {
        return new Tensor(shape, data, null, false, null);
    }

    /**
     * A leaf tensor whose gradient backward computes (for tests of the operations). Its gradient
     * array is its own, not the pool's: it survives {@link #reset()} and keeps accumulating.
     */
    public Tensor variable(float[] data, int... shape) {
        return new Tensor(shape, data, null, true, null);
    }

    /** A fresh tensor from the pool with unspecified contents; needs a gradient when any input does. */
    Tensor output(boolean requiresGrad, int... shape) {
        float[] data = pool.take(Tensor.sizeOf(shape));
        Tensor t = new Tensor(shape, data, null, requiresGrad && recording, null);
        t.intermediate = true;
        return t;
    }

    /** A tensor over x's data array under another shape (no copy); its gradient, if any, comes from the pool. */
    Tensor view(Tensor x, boolean requiresGrad, int... shape) {
        Tensor t = new Tensor(shape, x.data, null, requiresGrad && recording, null);
        t.intermediate = true;
        return t;
    }

    /** Pool scratch memory valid until {@link #reset()}. */
    float[] scratch(int length) {
        return pool.take(length);
    }

    /**
     * The gradient array of t, created zeroed on first use: from the pool for an intermediate
     * tensor, a fresh array for a leaf (a leaf outlives {@link #reset()}, which would hand a
     * pooled array on to the next step's intermediates while the leaf still adds into it).
     */
    float[] grad(Tensor t) {
        if (t.grad == null) {
            t.grad = t.intermediate ? pool.takeZeroed(t.size()) : new float[t.size()];
        }
        return t.grad;
    }

    /** True when any of the tensors needs a gradient and the graph is recording. */
    boolean needsGrad(Tensor... inputs) {
        if (!recording) {
            return false;
        }
        for (Tensor t : inputs) {
            if (t.requiresGrad) {
                return true;
            }
        }
        return false;
    }

    /**
     * Pushes the backward step of the operation that made {@code result}; it runs after the steps
     * of every later operation. Once it has run, nothing adds to {@code result}'s gradient any
     * more (every operation that read {@code result} came later, so its step ran earlier), and
     * {@link #backward} gives that gradient back to the pool for the gradients still to come.
     */
    void record(Tensor result, Runnable backwardStep) {
        if (recording) {
            tape.add(new Step(result, backwardStep));
        }
    }

    /**
     * Gives a pool array back before {@link #reset()}: scratch that a backward step needed only
     * while it ran. The array must not be used afterwards.
     */
    void release(float[] array) {
        pool.giveBack(array);
    }

    /** One entry of the tape: an operation's result and the step that sends its gradient to the operation's inputs. */
    private record Step(Tensor result, Runnable backward) {
    }

    /** Sets d(loss)/d(loss) = 1 and runs the tape backwards. The loss must be a one-element tensor. */
    public void backward(Tensor loss) {
        if (loss.size() != 1) {
            throw new IllegalArgumentException("backward needs a one-element loss, got shape " + Arrays.toString(loss.shape()));
        }
        if (!loss.requiresGrad) {
            throw new IllegalStateException("the loss does not depend on anything that needs a gradient");
        }
        grad(loss)[0] = 1f;
        for (int i = tape.size() - 1; i >= 0; i--) {
            Step step = tape.get(i);
            step.backward().run();
            Tensor result = step.result();
            if (result.intermediate && result.grad != null) {
                // Dead from here on: only the gradients of tensors made earlier are still to be filled.
                pool.giveBack(result.grad);
                result.grad = null;
            }
        }
        tape.clear();
    }

    /** Forgets the tape and returns every intermediate array to the pool; earlier tensors become invalid. */
    public void reset() {
        tape.clear();
        pool.releaseAll();
    }

    /** Most floats held by intermediate tensors at once, since creation. */
    public long peakFloats() {
        return pool.peakFloats();
    }

    @Override
    public void close() {
        reset();
        parallel.close();
    }
}
