package dev.muon4j.cuda;

import dev.muon4j.optim.GradientClipping;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.NonFinitePolicy;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.StepResult;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.optim.UpdateTransform;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The hybrid optimizer of muon4j-core ({@link HybridOptimizer}) with parameters, gradients and state
 * resident on a GPU. It takes the same {@link HybridOptimizer.Builder}: the same routes, rules,
 * overrides, schedule, clipping and non-finite policy, and runs each parameter's {@link UpdateRule}
 * stage by stage, each stage on the GPU:
 *
 * <ul>
 *   <li>{@link Transforms.Momentum}, {@link Transforms.AdamMoments}, {@link Transforms.DecoupledUpdate}
 *       (plain or cautious): {@link CudaKernels}, the scalar kernels' arithmetic;</li>
 *   <li>{@link Transforms.Orthogonalize} and {@link Transforms.OrthogonalizeBlocks}: {@link CudaNewtonSchulz}.</li>
 * </ul>
 *
 * A rule with another stage (NorMuon's row normalisation, a stage of the user's own) is refused when
 * the optimizer is built, naming the parameter and the stage.
 *
 * <p>Parameters of one rule, one matrix shape and the same hyperparameters form a group whose
 * values, gradients and state each lie in one device array, so each stage is one kernel over the
 * group and each Newton–Schulz product one batched cuBLAS call over all its matrices (the 12
 * same-shape matrices of a 12-layer model's attention output, say). Adam's moments and the update
 * that follows run as one kernel; so do Newton–Schulz's bfloat16 result and the update.
 *
 * <p>The gradients are written into the device by {@link #setGradients()} (from the parameters'
 * gradient arrays) or by the caller's own GPU code at {@link #gradientAddress}; the weights come back
 * to the parameters' value arrays with {@link #getValues()}. Each step computes the gradients' global
 * norm (one sum of squares per group, one small copy to the host): the step's reported norm, the
 * clipping and the non-finite check, as the CPU optimizer does.
 */
public final class CudaOptimizer implements AutoCloseable {
    /** A parameter inside its group: its elements start at {@code offset} in the group's arrays. */
    public record Member(Parameter parameter, long offset) {
    }

    /**
     * Parameters updated together.
     *
     * @param rule         their update rule
     * @param rows         the rows of the matrices Newton–Schulz sees (a row block's for per-head rules), 0 without a matrix stage
     * @param cols         their columns, 0 without a matrix stage
     * @param batch        how many such matrices the group holds, 0 without a matrix stage
     * @param learningRate base learning rate
     * @param weightDecay  decoupled weight decay
     * @param scale        the update scale (Muon's shape scale, 1 for AdamW)
     * @param members      the parameters, in the order given
     * @param elements     total elements
     */
    public record Group(UpdateRule rule, int rows, int cols, int batch, double learningRate, double weightDecay, double scale,
                        List<Member> members, long elements) {
    }

    /** What a build would allocate and run, computed without a GPU: the groups, in order of their first parameter. */
    public record Plan(List<Group> groups, LearningRateSchedule schedule, double maxGradientNorm, NonFinitePolicy nonFinite) {
    }

    private record Key(UpdateRule rule, int rows, int cols, double learningRate, double weightDecay, double scale) {
    }

    /**
     * Groups {@code parameters} as {@link #build} would, after the builder's routing, and checks that every
     * stage of every rule runs on the GPU.
     *
     * @throws IllegalArgumentException naming the parameter and the stage (or Newton–Schulz setting) CUDA does not run
     */
    public static Plan plan(HybridOptimizer.Builder builder, List<Parameter> parameters) {
        Map<Key, List<HybridOptimizer.Assignment>> grouped = new LinkedHashMap<>();
        for (HybridOptimizer.Assignment a : builder.assign(parameters)) {
            int rows = 0;
            int cols = 0;
            for (UpdateTransform t : a.rule().transforms()) {
                try {
                    switch (t) {
                        case Transforms.Momentum ignored -> { }
                        case Transforms.AdamMoments ignored -> { }
                        case Transforms.DecoupledUpdate ignored -> { }
                        case Transforms.Orthogonalize o -> {
                            CudaNewtonSchulz.check(o.config());
                            rows = a.parameter().layout().fanOut();
                            cols = a.parameter().layout().fanIn();
                        }
                        case Transforms.OrthogonalizeBlocks o -> {
                            CudaNewtonSchulz.check(o.config());
                            rows = o.blockRows();
                            cols = a.parameter().layout().fanIn();
                        }
                        default -> throw new IllegalArgumentException("its stage " + t.name() + " (" + t.getClass().getName()
                                + ") has no CUDA implementation; CUDA runs momentum, adam, orthogonalize, orthogonalize_blocks and "
                                + "the decoupled update (plain or cautious)");
                    }
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("parameter " + a.parameter().name() + " (rule " + a.rule().name() + "): "
                            + e.getMessage(), e);
                }
            }
            grouped.computeIfAbsent(new Key(a.rule(), rows, cols, a.learningRate(), a.weightDecay(), a.scale()), k -> new ArrayList<>())
                    .add(a);
        }
        List<Group> groups = new ArrayList<>();
        for (Map.Entry<Key, List<HybridOptimizer.Assignment>> e : grouped.entrySet()) {
            Key k = e.getKey();
            List<Member> members = new ArrayList<>();
            long offset = 0;
            for (HybridOptimizer.Assignment a : e.getValue()) {
                members.add(new Member(a.parameter(), offset));
                offset += a.parameter().size();
            }
            int batch = k.rows() == 0 ? 0 : Math.toIntExact(offset / ((long) k.rows() * k.cols()));
            groups.add(new Group(k.rule(), k.rows(), k.cols(), batch, k.learningRate(), k.weightDecay(), k.scale(), List.copyOf(members),
                    offset));
        }
        return new Plan(List.copyOf(groups), builder.schedule(), builder.maxGradientNorm(), builder.nonFinitePolicy());
    }

    /** A group's device arrays. */
    private static final class Resident implements AutoCloseable {
        final Group group;
        final DeviceArray value;
        final DeviceArray gradient;
        final DeviceArray update;
        final Map<String, DeviceArray> state = new LinkedHashMap<>();
        final CudaNewtonSchulz newtonSchulz;

        Resident(CudaDevice device, Group group, int symmetricBlocks) {
            this.group = group;
            long n = group.elements();
            this.value = device.allocateFloats(n);
            this.gradient = device.allocateFloats(n);
            this.update = device.allocateFloats(n);
            device.zero(gradient.address(), n * Float.BYTES);
            for (UpdateTransform t : group.rule().transforms()) {
                for (String name : t.state(group.members().getFirst().parameter()).keySet()) {
                    DeviceArray buffer = device.allocateFloats(n);
                    device.zero(buffer.address(), n * Float.BYTES);
                    state.put(name, buffer);
                }
            }
            CudaNewtonSchulz ns = null;
            for (UpdateTransform t : group.rule().transforms()) {
                if (t instanceof Transforms.Orthogonalize o) {
                    ns = newtonSchulz(device, o.config(), group, symmetricBlocks);
                } else if (t instanceof Transforms.OrthogonalizeBlocks o) {
                    ns = newtonSchulz(device, o.config(), group, symmetricBlocks);
                }
            }
            this.newtonSchulz = ns;
            for (Member member : group.members()) {
                value.copyFrom(member.parameter().value(), 0, member.offset(), member.parameter().size());
            }
        }

        private static CudaNewtonSchulz newtonSchulz(CudaDevice device, dev.muon4j.optim.NewtonSchulzConfig config, Group group,
                                                     int symmetricBlocks) {
            int blocks = symmetricBlocks > 0 ? symmetricBlocks : CudaNewtonSchulz.defaultBlocks(group.rows(), group.cols());
            return new CudaNewtonSchulz(device, config, group.rows(), group.cols(), group.batch(), blocks);
        }

        @Override
        public void close() {
            if (newtonSchulz != null) {
                newtonSchulz.close();
            }
            for (DeviceArray a : state.values()) {
                a.close();
            }
            value.close();
            gradient.close();
            update.close();
        }
    }

    private final CudaDevice device;
    private final Plan plan;
    private final List<Resident> residents = new ArrayList<>();
    private final Map<String, Resident> byName = new LinkedHashMap<>();
    private final Map<String, Member> members = new LinkedHashMap<>();
    private final DeviceArray norms;
    private long step;
    private long skipped;

    private CudaOptimizer(CudaDevice device, Plan plan, int symmetricBlocks) {
        this.device = device;
        this.plan = plan;
        try {
            for (Group g : plan.groups()) {
                Resident r = new Resident(device, g, symmetricBlocks);
                residents.add(r);
                for (Member m : g.members()) {
                    byName.put(m.parameter().name(), r);
                    members.put(m.parameter().name(), m);
                }
            }
            this.norms = device.allocate(residents.size(), DeviceArray.Type.F64);
        } catch (RuntimeException e) {
            residents.forEach(Resident::close);
            throw e;
        }
    }

    /** The optimizer on {@code device}: the parameters' values copied to the GPU, state zero, gradients zero. */
    public static CudaOptimizer build(CudaDevice device, HybridOptimizer.Builder builder, List<Parameter> parameters) {
        return build(device, builder, parameters, 0);
    }

    /**
     * As {@link #build(CudaDevice, HybridOptimizer.Builder, List)}, with the symmetric products of Newton–Schulz in
     * {@code symmetricBlocks} blocks per side (0: {@link CudaNewtonSchulz#defaultBlocks}).
     */
    public static CudaOptimizer build(CudaDevice device, HybridOptimizer.Builder builder, List<Parameter> parameters, int symmetricBlocks) {
        Objects.requireNonNull(device, "device");
        return new CudaOptimizer(device, plan(builder, parameters), symmetricBlocks);
    }

    public Plan plan() {
        return plan;
    }

    private Member member(String name) {
        Member m = members.get(name);
        if (m == null) {
            throw new IllegalArgumentException("no parameter named " + name + " in this optimizer");
        }
        return m;
    }

    /** The device address of parameter {@code name}'s float32 values. */
    public long valueAddress(String name) {
        return byName.get(member(name).parameter().name()).value.address(member(name).offset());
    }

    /** The device address where parameter {@code name}'s float32 gradient is read from by {@link #step}. */
    public long gradientAddress(String name) {
        return byName.get(member(name).parameter().name()).gradient.address(member(name).offset());
    }

    /** Copies every parameter's gradient array (host) to the device. */
    public void setGradients() {
        for (Member m : members.values()) {
            byName.get(m.parameter().name()).gradient.copyFrom(m.parameter().gradient(), 0, m.offset(), m.parameter().size());
        }
    }

    /** Copies the device's weights into every parameter's value array (host). */
    public void getValues() {
        for (Member m : members.values()) {
            byName.get(m.parameter().name()).value.copyTo(m.offset(), m.parameter().value(), 0, m.parameter().size());
        }
    }

    /** A copy of state buffer {@code buffer} (e.g. {@code "momentum"}) of parameter {@code name}. */
    public float[] state(String name, String buffer) {
        Member m = member(name);
        DeviceArray a = byName.get(name).state.get(buffer);
        if (a == null) {
            throw new IllegalArgumentException("parameter " + name + " keeps no state named " + buffer + "; it keeps "
                    + byName.get(name).state.keySet());
        }
        float[] out = new float[m.parameter().size()];
        a.copyTo(m.offset(), out, 0, out.length);
        return out;
    }

    public long stepCount() {
        return step;
    }

    public long skippedSteps() {
        return skipped;
    }

    /** The gradients' global norm, as the CPU optimizer computes it (the group sums in double, added in order). */
    private double globalNorm() {
        CudaKernels k = device.kernels;
        device.zero(norms.address(), (long) residents.size() * Double.BYTES);
        for (int i = 0; i < residents.size(); i++) {
            Resident r = residents.get(i);
            int blocks = (int) Math.max(1, Math.min(4L * device.multiprocessors(), (r.group.elements() + 255) / 256));
            k.launch("sum_squares", blocks, 1, CudaKernels.THREADS, 1, r.gradient.address(), r.group.elements(), norms.address(i));
        }
        double sum = 0;
        for (double s : norms.toDoubles()) {
            sum += s;
        }
        return Math.sqrt(sum);
    }

    /** One step over every group; the learning rate of step t is the schedule's factor of t − 1 times each base rate. */
    public StepResult step() {
        double norm = globalNorm();
        if (!Double.isFinite(norm)) {
            if (plan.nonFinite() == NonFinitePolicy.FAIL) {
                throw firstNonFinite();
            }
            skipped++;
            return new StepResult(step, true, Double.NaN, false, plan.schedule().factor(step));
        }
        boolean clipped = false;
        if (plan.maxGradientNorm() > 0) {
            float f = GradientClipping.factor(norm, plan.maxGradientNorm());
            if (f != 1f) {
                for (Resident r : residents) {
                    device.kernels.scale(r.gradient.address(), r.group.elements(), f);
                }
                clipped = true;
            }
        }
        double factor = plan.schedule().factor(step);
        long t = step + 1;
        for (Resident r : residents) {
            run(r, t, factor);
        }
        step = t;
        return new StepResult(step, false, norm, clipped, factor);
    }

    private NonFiniteGradientException firstNonFinite() {
        for (Member m : members.values()) {
            float[] g = new float[m.parameter().size()];
            byName.get(m.parameter().name()).gradient.copyTo(m.offset(), g, 0, g.length);
            for (int i = 0; i < g.length; i++) {
                if (!Float.isFinite(g[i])) {
                    return new NonFiniteGradientException(m.parameter().name(), i, g[i], step + skipped + 1);
                }
            }
        }
        // The sum of squares overflowed with every element finite.
        Member first = members.values().iterator().next();
        return new NonFiniteGradientException(first.parameter().name(), 0, Float.POSITIVE_INFINITY, step + skipped + 1);
    }

    /** The group's rule, stage by stage. */
    private void run(Resident r, long t, double factor) {
        CudaKernels k = device.kernels;
        Group g = r.group;
        long n = g.elements();
        double lr = factor * g.learningRate();
        float decay = (float) (1 - lr * g.weightDecay());
        float stepSize = (float) (lr * g.scale());
        List<UpdateTransform> stages = g.rule().transforms();
        long current = r.gradient.address();
        boolean currentBf16 = false;
        for (int i = 0; i < stages.size(); i++) {
            UpdateTransform stage = stages.get(i);
            boolean lastFollows = i + 2 == stages.size();
            switch (stage) {
                case Transforms.Momentum mo -> {
                    float gScale = mo.form() == MomentumForm.EMA ? (float) (1 - mo.beta()) : 1f;
                    k.muonMomentum(current, r.state.get(Transforms.MOMENTUM).address(), r.update.address(), n, gScale, (float) mo.beta(),
                            mo.nesterov());
                    current = r.update.address();
                }
                case Transforms.AdamMoments ad -> {
                    CudaKernels.AdamScalars s = CudaKernels.AdamScalars.of(ad.beta1(), ad.beta2(), ad.eps(), t);
                    long m = r.state.get(Transforms.EXP_AVG).address();
                    long v = r.state.get(Transforms.EXP_AVG_SQ).address();
                    if (lastFollows) {
                        Transforms.DecoupledUpdate du = (Transforms.DecoupledUpdate) stages.getLast();
                        k.adamw(r.value.address(), current, m, v, n, s, decay, stepSize, du.weightDecay() == Transforms.WeightDecayMode.CAUTIOUS);
                        return;
                    }
                    k.adamMoments(current, m, v, r.update.address(), n, s);
                    current = r.update.address();
                }
                case Transforms.Orthogonalize _, Transforms.OrthogonalizeBlocks _ -> {
                    long result = r.newtonSchulz.orthogonalize(current);
                    if (lastFollows) {
                        current = result;
                        currentBf16 = r.newtonSchulz.bf16();
                    } else {
                        convert(r, result);
                        current = r.update.address();
                    }
                }
                case Transforms.DecoupledUpdate du -> k.decayUpdate(currentBf16, r.value.address(), current, n, decay, stepSize,
                        du.weightDecay() == Transforms.WeightDecayMode.CAUTIOUS);
                default -> throw new IllegalStateException("stage " + stage.name() + " was not refused by plan()");
            }
        }
    }

    private void convert(Resident r, long result) {
        long n = r.group.elements();
        if (r.newtonSchulz.bf16()) {
            device.kernels.bf16ToF32(result, r.update.address(), n);
        } else {
            device.copy(r.update.address(), result, n * Float.BYTES);
        }
    }

    /** Bytes of device memory held: values, gradients, updates, state, Newton–Schulz workspaces. */
    public long deviceBytes() {
        long total = 0;
        for (Resident r : residents) {
            total += (3 + r.state.size()) * r.group.elements() * Float.BYTES;
            if (r.newtonSchulz != null) {
                total += r.newtonSchulz.deviceBytes();
            }
        }
        return total;
    }

    @Override
    public void close() {
        residents.forEach(Resident::close);
        norms.close();
    }
}
