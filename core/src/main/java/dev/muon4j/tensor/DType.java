package dev.muon4j.tensor;

/** Element types. Storage is always float32; {@link #BF16} means values are rounded to bfloat16 where it applies. */
public enum DType {
    F32,
    BF16
}
