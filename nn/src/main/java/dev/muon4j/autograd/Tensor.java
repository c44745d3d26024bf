package dev.muon4j.autograd;

import dev.muon4j.optim.Parameter;
import java.util.Arrays;

/**
 * A dense row-major float32 tensor in a {@link Graph}: a shape, its values and (once backward has
 * reached it) its gradient. Tensors made by graph operations borrow their arrays from the graph's
 * pool and are valid until {@link Graph#reset()}; a tensor wrapping a {@link Parameter} uses the
 * parameter's own value and gradient arrays, and backward adds into that gradient.
 */
public final class Tensor {
    private final int[] shape;
    private final int size;
    final float[] data;
    float[] grad;
    final boolean requiresGrad;
    final Parameter parameter;
    /** Made by an operation (its arrays come from the graph's pool), as opposed to a leaf. */
    boolean intermediate;

    Tensor(int[] shape, float[] data, float[] grad, boolean requiresGrad, Parameter parameter) {
        this.shape = shape.clone();
        this.size = sizeOf(shape);
        if (data.length < size) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " needs " + size
                    + " floats, array has " + data.length);
        }
        this.data = data;
        this.grad = grad;
        this.requiresGrad = requiresGrad;
        this.parameter = parameter;
    }

    static int sizeOf(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n *= d;
        }
        return Math.toIntExact(n);
    }

    /** A copy of the shape. */
    public int[] shape() {
        return shape.clone();
    }

    /** Size of dimension {@code i}; negative i counts from the end. */
    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public int rank() {
        return shape.length;
    }

    /** Number of elements. */
    public int size() {
        return size;
    }

    /** The values (the backing array may be longer than {@link #size()}). */
    public float[] data() {
        return data;
    }

    /** The gradient, or null if backward has not produced one. */
    public float[] grad() {
        return grad;
    }

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** Value at a flat index. */
    public float get(int index) {
        if (index < 0 || index >= size) {
            throw new IndexOutOfBoundsException("index " + index + " outside tensor of " + size + " elements");
        }
        return data[index];
    }

    /** The single value of a one-element tensor (a loss). */
    public float item() {
        if (size != 1) {
            throw new IllegalStateException("item() needs a one-element tensor, shape is " + Arrays.toString(shape));
        }
        return data[0];
    }

    /** Product of all dimensions but the last: the row count of the tensor seen as a matrix. */
    public int rows() {
        return shape.length == 0 ? 1 : size / Math.max(1, shape[shape.length - 1]);
    }

    /** The last dimension. */
    public int cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + (parameter != null ? " " + parameter.name() : "");
    }
}
