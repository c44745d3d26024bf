package dev.muon4j.optim;

/**
 * How Muon sees a parameter: {@code count} matrices of {@code fanOut × fanIn}, stored row-major
 * one after another (a plain weight has count 1; an MoE layer's stacked expert weights have one
 * matrix per expert). Fan-out and fan-in are stated, never guessed from the storage layout: they
 * decide the update scale.
 */
public record MatrixLayout(int count, int fanOut, int fanIn) {
    public MatrixLayout {
        if (count < 1 || fanOut < 1 || fanIn < 1) {
            throw new IllegalArgumentException("matrix layout needs positive count, fan-out and fan-in, got "
                    + count + " × " + fanOut + "×" + fanIn);
        }
    }

    /** Elements of one matrix. */
    public int matrixSize() {
        return Math.multiplyExact(fanOut, fanIn);
    }

    /** Elements of all matrices. */
    public long elementCount() {
        return (long) count * fanOut * fanIn;
    }
}
