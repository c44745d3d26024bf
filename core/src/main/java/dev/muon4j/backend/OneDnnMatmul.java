package dev.muon4j.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@link Bf16Matmul} over oneDNN's matmul primitive (the "brgemm" kernels oneDNN generates for the
 * processor at run time), called through java.lang.foreign.
 *
 * <p>A primitive is made for one shape, layout and pair of (alpha, beta), and kept: oneDNN
 * generates its kernels when the primitive is created, which costs far more than running it. alpha
 * is an {@code eltwise_linear} post-op on the float32 accumulator and beta a {@code sum} post-op
 * that adds beta times C's old value, so {@code C = bf16(alpha·A·B + beta·C)} is rounded once. A
 * transposed operand is described by its strides; nothing is copied. The most recently used
 * {@value #CACHED} primitives are kept; Newton–Schulz on the matrices of one model uses a few per
 * shape.
 *
 * <p>Measured on 2 Zen 5 cores (AVX512_BF16), oneDNN 3.11, products of bfloat16 matrices: 560–690
 * GFLOP/s on two threads and about 380 on one, against 330–390 for float32 (docs/BENCHMARKS.md).
 */
final class OneDnnMatmul implements Bf16Matmul {
    /** Primitives kept per instance. */
    static final int CACHED = 64;

    // dnnl_types.h / dnnl_common_types.h
    private static final int ENGINE_CPU = 1;
    private static final int STREAM_IN_ORDER = 0x1;
    private static final int DATA_TYPE_UNDEF = 0;
    private static final int BF16 = 2;
    private static final int ELTWISE_LINEAR = 38;
    private static final int QUERY_IMPL_INFO_STR = 8;
    private static final int ARG_SRC = 1;
    private static final int ARG_DST = 17;
    private static final int ARG_WEIGHTS = 33;
    private static final int MAX_NDIMS = 12;
    /** dnnl_exec_arg_t: {int arg; dnnl_memory_t memory;}. */
    private static final MemoryLayout EXEC_ARG = MemoryLayout.structLayout(ValueLayout.JAVA_INT, MemoryLayout.paddingLayout(4),
            ValueLayout.ADDRESS);

    /** The library's functions used here and the engine, shared by every instance on one library. */
    static final class Library {
        private final MethodHandle memoryDescCreateWithStrides;
        private final MethodHandle memoryDescDestroy;
        private final MethodHandle attrCreate;
        private final MethodHandle attrDestroy;
        private final MethodHandle attrSetPostOps;
        private final MethodHandle postOpsCreate;
        private final MethodHandle postOpsDestroy;
        private final MethodHandle postOpsAppendEltwise;
        private final MethodHandle postOpsAppendSum;
        private final MethodHandle matmulDescCreate;
        private final MethodHandle descQuery;
        private final MethodHandle descDestroy;
        private final MethodHandle primitiveCreate;
        private final MethodHandle primitiveDestroy;
        private final MethodHandle primitiveExecute;
        private final MethodHandle memoryCreate;
        private final MethodHandle memorySetDataHandle;
        private final MethodHandle memoryDestroy;
        private final MethodHandle streamCreate;
        private final MethodHandle streamWait;
        private final MethodHandle streamDestroy;
        private final MethodHandle setOmpThreads;
        private final MemorySegment engine;
        private final Path path;

        Library(SymbolLookup dnnl, Path path, MethodHandle setOmpThreads) {
            this.path = path;
            this.setOmpThreads = setOmpThreads;
            var I = ValueLayout.JAVA_INT;
            var P = ValueLayout.ADDRESS;
            var F = ValueLayout.JAVA_FLOAT;
            memoryDescCreateWithStrides = handle(dnnl, "dnnl_memory_desc_create_with_strides", FunctionDescriptor.of(I, P, I, P, I, P));
            memoryDescDestroy = handle(dnnl, "dnnl_memory_desc_destroy", FunctionDescriptor.of(I, P));
            attrCreate = handle(dnnl, "dnnl_primitive_attr_create", FunctionDescriptor.of(I, P));
            attrDestroy = handle(dnnl, "dnnl_primitive_attr_destroy", FunctionDescriptor.of(I, P));
            attrSetPostOps = handle(dnnl, "dnnl_primitive_attr_set_post_ops", FunctionDescriptor.of(I, P, P));
            postOpsCreate = handle(dnnl, "dnnl_post_ops_create", FunctionDescriptor.of(I, P));
            postOpsDestroy = handle(dnnl, "dnnl_post_ops_destroy", FunctionDescriptor.of(I, P));
            postOpsAppendEltwise = handle(dnnl, "dnnl_post_ops_append_eltwise", FunctionDescriptor.of(I, P, I, F, F));
            postOpsAppendSum = handle(dnnl, "dnnl_post_ops_append_sum", FunctionDescriptor.of(I, P, F, I, I));
            matmulDescCreate = handle(dnnl, "dnnl_matmul_primitive_desc_create", FunctionDescriptor.of(I, P, P, P, P, P, P, P));
            descQuery = handle(dnnl, "dnnl_primitive_desc_query", FunctionDescriptor.of(I, P, I, I, P));
            descDestroy = handle(dnnl, "dnnl_primitive_desc_destroy", FunctionDescriptor.of(I, P));
            primitiveCreate = handle(dnnl, "dnnl_primitive_create", FunctionDescriptor.of(I, P, P));
            primitiveDestroy = handle(dnnl, "dnnl_primitive_destroy", FunctionDescriptor.of(I, P));
            primitiveExecute = handle(dnnl, "dnnl_primitive_execute", FunctionDescriptor.of(I, P, P, I, P));
            memoryCreate = handle(dnnl, "dnnl_memory_create", FunctionDescriptor.of(I, P, P, P, P));
            memorySetDataHandle = handle(dnnl, "dnnl_memory_set_data_handle", FunctionDescriptor.of(I, P, P));
            memoryDestroy = handle(dnnl, "dnnl_memory_destroy", FunctionDescriptor.of(I, P));
            streamCreate = handle(dnnl, "dnnl_stream_create", FunctionDescriptor.of(I, P, P, I));
            streamWait = handle(dnnl, "dnnl_stream_wait", FunctionDescriptor.of(I, P));
            streamDestroy = handle(dnnl, "dnnl_stream_destroy", FunctionDescriptor.of(I, P));
            MethodHandle engineCreate = handle(dnnl, "dnnl_engine_create", FunctionDescriptor.of(I, P, I, ValueLayout.JAVA_LONG));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment out = arena.allocate(P);
                check((int) engineCreate.invokeExact(out, ENGINE_CPU, 0L), "dnnl_engine_create");
                engine = out.get(P, 0);
            } catch (RuntimeException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException("dnnl_engine_create failed", t);
            }
        }

        private MethodHandle handle(SymbolLookup dnnl, String symbol, FunctionDescriptor descriptor) {
            MemorySegment address = dnnl.find(symbol).orElseThrow(
                    () -> new IllegalStateException("oneDNN library " + path + " lacks symbol " + symbol));
            return Linker.nativeLinker().downcallHandle(address, descriptor);
        }

        private void check(int status, String what) {
            if (status != 0) {
                throw new IllegalStateException(what + " returned oneDNN status " + status + " (" + path + ")");
            }
        }
    }

    /** One cached primitive with its three memory objects, whose data handles are set at each call. */
    private record Entry(MemorySegment primitive, MemorySegment src, MemorySegment weights, MemorySegment dst, String impl) {
    }

    private record Key(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldc, int alphaBits, int betaBits) {
    }

    private final Library lib;
    private final int threads;
    private final MemorySegment stream;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment args;
    private final Map<Key, Entry> cache = new LinkedHashMap<>(16, 0.75f, true);
    private String lastImpl = "";
    private boolean closed;

    OneDnnMatmul(Library lib, int threads) {
        this.lib = lib;
        this.threads = threads;
        this.args = arena.allocate(EXEC_ARG, 3);
        try {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            lib.check((int) lib.streamCreate.invokeExact(out, lib.engine, STREAM_IN_ORDER), "dnnl_stream_create");
            stream = out.get(ValueLayout.ADDRESS, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("dnnl_stream_create failed", t);
        }
    }

    @Override
    public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k,
                                  float alpha, MemorySegment a, int lda, MemorySegment b, int ldb,
                                  float beta, MemorySegment c, int ldc) {
        Bf16Matmul.checkMatrix("A", a, transA ? k : m, transA ? m : k, lda);
        Bf16Matmul.checkMatrix("B", b, transB ? n : k, transB ? k : n, ldb);
        Bf16Matmul.checkMatrix("C", c, m, n, ldc);
        if (closed) {
            throw new IllegalStateException("oneDNN matmul used after close");
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            scaleOnly(m, n, beta, c, ldc);
            return;
        }
        Entry e = entry(new Key(transA, transB, m, n, k, lda, ldb, ldc, Float.floatToRawIntBits(alpha), Float.floatToRawIntBits(beta)));
        try {
            lib.setOmpThreads.invokeExact(threads);
            lib.check((int) lib.memorySetDataHandle.invokeExact(e.src(), a), "dnnl_memory_set_data_handle");
            lib.check((int) lib.memorySetDataHandle.invokeExact(e.weights(), b), "dnnl_memory_set_data_handle");
            lib.check((int) lib.memorySetDataHandle.invokeExact(e.dst(), c), "dnnl_memory_set_data_handle");
            setArg(0, ARG_SRC, e.src());
            setArg(1, ARG_WEIGHTS, e.weights());
            setArg(2, ARG_DST, e.dst());
            lib.check((int) lib.primitiveExecute.invokeExact(e.primitive(), stream, 3, args), "dnnl_primitive_execute");
            lib.check((int) lib.streamWait.invokeExact(stream), "dnnl_stream_wait");
        } catch (RuntimeException ex) {
            throw ex;
        } catch (Throwable t) {
            throw new IllegalStateException("oneDNN matmul failed", t);
        }
    }

    /** C = bf16(beta·C), or zeros for beta = 0: the product of an empty sum. */
    private static void scaleOnly(int m, int n, float beta, MemorySegment c, int ldc) {
        var S = ValueLayout.JAVA_SHORT_UNALIGNED;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                long at = (long) i * ldc + j;
                float v = beta == 0f ? 0f : beta * dev.muon4j.tensor.BFloat16.fromBits(c.getAtIndex(S, at));
                c.setAtIndex(S, at, dev.muon4j.tensor.BFloat16.toBits(v));
            }
        }
    }

    private void setArg(int i, int arg, MemorySegment memory) {
        long at = i * EXEC_ARG.byteSize();
        args.set(ValueLayout.JAVA_INT, at, arg);
        args.set(ValueLayout.ADDRESS, at + 8, memory);
    }

    private Entry entry(Key key) {
        Entry e = cache.get(key);
        if (e != null) {
            return e;
        }
        e = create(key);
        cache.put(key, e);
        lastImpl = e.impl();
        if (cache.size() > CACHED) {
            var eldest = cache.entrySet().iterator();
            destroy(eldest.next().getValue());
            eldest.remove();
        }
        return e;
    }

    /** Creates the primitive for {@code key}: src = op(A) m×k, weights = op(B) k×n, dst = C m×n, all bfloat16 with strides. */
    private Entry create(Key key) {
        var P = ValueLayout.ADDRESS;
        try (Arena local = Arena.ofConfined()) {
            MemorySegment srcMd = memoryDesc(local, key.m(), key.k(), key.transA(), key.lda());
            MemorySegment weightsMd = memoryDesc(local, key.k(), key.n(), key.transB(), key.ldb());
            MemorySegment dstMd = memoryDesc(local, key.m(), key.n(), false, key.ldc());
            MemorySegment out = local.allocate(P);
            lib.check((int) lib.attrCreate.invokeExact(out), "dnnl_primitive_attr_create");
            MemorySegment attr = out.get(P, 0);
            lib.check((int) lib.postOpsCreate.invokeExact(out), "dnnl_post_ops_create");
            MemorySegment postOps = out.get(P, 0);
            float alpha = Float.intBitsToFloat(key.alphaBits());
            float beta = Float.intBitsToFloat(key.betaBits());
            if (alpha != 1f) {
                lib.check((int) lib.postOpsAppendEltwise.invokeExact(postOps, ELTWISE_LINEAR, alpha, 0f), "dnnl_post_ops_append_eltwise");
            }
            if (beta != 0f) {
                lib.check((int) lib.postOpsAppendSum.invokeExact(postOps, beta, 0, DATA_TYPE_UNDEF), "dnnl_post_ops_append_sum");
            }
            lib.check((int) lib.attrSetPostOps.invokeExact(attr, postOps), "dnnl_primitive_attr_set_post_ops");
            lib.setOmpThreads.invokeExact(threads); // the primitive splits its work for this many threads
            lib.check((int) lib.matmulDescCreate.invokeExact(out, lib.engine, srcMd, weightsMd, MemorySegment.NULL, dstMd, attr),
                    "dnnl_matmul_primitive_desc_create for " + key);
            MemorySegment pd = out.get(P, 0);
            MemorySegment implOut = local.allocate(P);
            lib.check((int) lib.descQuery.invokeExact(pd, QUERY_IMPL_INFO_STR, 0, implOut), "dnnl_primitive_desc_query");
            String impl = implOut.get(P, 0).reinterpret(256).getString(0);
            lib.check((int) lib.primitiveCreate.invokeExact(out, pd), "dnnl_primitive_create");
            MemorySegment primitive = out.get(P, 0);
            MemorySegment src = memory(local, srcMd);
            MemorySegment weights = memory(local, weightsMd);
            MemorySegment dst = memory(local, dstMd);
            lib.check((int) lib.descDestroy.invokeExact(pd), "dnnl_primitive_desc_destroy");
            lib.check((int) lib.postOpsDestroy.invokeExact(postOps), "dnnl_post_ops_destroy");
            lib.check((int) lib.attrDestroy.invokeExact(attr), "dnnl_primitive_attr_destroy");
            for (MemorySegment md : new MemorySegment[] {srcMd, weightsMd, dstMd}) {
                lib.check((int) lib.memoryDescDestroy.invokeExact(md), "dnnl_memory_desc_destroy");
            }
            return new Entry(primitive, src, weights, dst, impl);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cannot create a oneDNN bfloat16 matmul for " + key, t);
        }
    }

    /** A rows×cols bfloat16 memory descriptor; {@code transposed}: stored cols×rows with leading dimension ld. */
    private MemorySegment memoryDesc(Arena local, int rows, int cols, boolean transposed, int ld) throws Throwable {
        MemorySegment dims = local.allocate(ValueLayout.JAVA_LONG, MAX_NDIMS);
        MemorySegment strides = local.allocate(ValueLayout.JAVA_LONG, MAX_NDIMS);
        dims.setAtIndex(ValueLayout.JAVA_LONG, 0, rows);
        dims.setAtIndex(ValueLayout.JAVA_LONG, 1, cols);
        strides.setAtIndex(ValueLayout.JAVA_LONG, 0, transposed ? 1 : ld);
        strides.setAtIndex(ValueLayout.JAVA_LONG, 1, transposed ? ld : 1);
        MemorySegment out = local.allocate(ValueLayout.ADDRESS);
        lib.check((int) lib.memoryDescCreateWithStrides.invokeExact(out, 2, dims, BF16, strides), "dnnl_memory_desc_create_with_strides");
        return out.get(ValueLayout.ADDRESS, 0);
    }

    private MemorySegment memory(Arena local, MemorySegment md) throws Throwable {
        MemorySegment out = local.allocate(ValueLayout.ADDRESS);
        lib.check((int) lib.memoryCreate.invokeExact(out, md, lib.engine, MemorySegment.NULL), "dnnl_memory_create");
        return out.get(ValueLayout.ADDRESS, 0);
    }

    private void destroy(Entry e) {
        try {
            lib.check((int) lib.primitiveDestroy.invokeExact(e.primitive()), "dnnl_primitive_destroy");
            for (MemorySegment m : new MemorySegment[] {e.src(), e.weights(), e.dst()}) {
                lib.check((int) lib.memoryDestroy.invokeExact(m), "dnnl_memory_destroy");
            }
        } catch (RuntimeException ex) {
            throw ex;
        } catch (Throwable t) {
            throw new IllegalStateException("cannot destroy a oneDNN primitive", t);
        }
    }

    /** Primitives in the cache now (for tests). */
    synchronized int cached() {
        return cache.size();
    }

    @Override
    public synchronized String description() {
        return "oneDNN matmul" + (lastImpl.isEmpty() ? "" : " " + lastImpl) + ", " + threads + " thread" + (threads == 1 ? "" : "s");
    }

    synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Entry e : cache.values()) {
            destroy(e);
        }
        cache.clear();
        try {
            lib.check((int) lib.streamDestroy.invokeExact(stream), "dnnl_stream_destroy");
        } catch (RuntimeException ex) {
            throw ex;
        } catch (Throwable t) {
            throw new IllegalStateException("cannot destroy a oneDNN stream", t);
        }
        arena.close();
    }
}
