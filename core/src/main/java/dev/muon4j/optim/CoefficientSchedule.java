package dev.muon4j.optim;

import java.util.List;
import java.util.Objects;

/**
 * Per-step Newton–Schulz coefficients: step {@code i} uses {@code perStep.get(i)} while there is
 * one, and {@code tail} after. Before the first step X is divided by
 * {@code normScale·‖X‖_F + eps}.
 *
 * @param name      short name for logs and reports
 * @param perStep   coefficients of the first steps, in order (may be empty)
 * @param tail      coefficients of every later step
 * @param normScale factor on the Frobenius norm in the normalisation (1, or 1.01 for Polar Express)
 */
public record CoefficientSchedule(String name, List<Coefficients> perStep, Coefficients tail, double normScale) {

    /**
     * Keller Jordan's quintic coefficients (3.4445, −4.7750, 2.0315), used for every step; also
     * PyTorch's {@code torch.optim.Muon} default. Source: github.com/KellerJordan/Muon, muon.py.
     * They trade exact orthogonality for speed: singular values land near [0.68, 1.13].
     */
    public static final Coefficients KELLER_JORDAN = new Coefficients(3.4445, -4.7750, 2.0315);

    /** Polar Express's steady-state coefficients, used from its eighth step on. */
    public static final Coefficients POLAR_EXPRESS_TAIL = new Coefficients(1.875, -1.25, 0.375);

    /**
     * Polar Express (Amsel, Persson, Musco, Gower; arXiv 2505.16932, Algorithm 1), raw coefficients
     * of the first seven steps before the 1.01 safety factor is applied.
     */
    public static final List<Coefficients> POLAR_EXPRESS_RAW = List.of(
            new Coefficients(8.28721201814563, -23.595886519098837, 17.300387312530933),
            new Coefficients(4.107059111542203, -2.9478499167379106, 0.5448431082926601),
            new Coefficients(3.9486908534822946, -2.908902115962949, 0.5518191394370137),
            new Coefficients(3.3184196573706015, -2.488488024314874, 0.51004894012372),
            new Coefficients(2.300652019954817, -1.6689039845747493, 0.4188073119525673),
            new Coefficients(1.891301407787398, -1.2679958271945868, 0.37680408948524835),
            new Coefficients(1.8750014808534479, -1.2500016453999487, 0.3750001645474248));

    /** Polar Express's safety factor: divides a, b, c by 1.01, 1.01³, 1.01⁵ and scales the norm by 1.01. */
    public static final double POLAR_EXPRESS_SAFETY = 1.01;

    public CoefficientSchedule {
        Objects.requireNonNull(name, "name");
        perStep = List.copyOf(Objects.requireNonNull(perStep, "perStep"));
        Objects.requireNonNull(tail, "tail");
        if (!(normScale > 0) || !Double.isFinite(normScale)) {
            throw new IllegalArgumentException("normScale must be positive and finite, got " + normScale);
        }
    }

    /** Keller Jordan's coefficients at every step (the default). */
    public static CoefficientSchedule kellerJordan() {
        return new CoefficientSchedule("keller-jordan", List.of(), KELLER_JORDAN, 1.0);
    }

    /** The Polar Express schedule with its 1.01 safety factor (its first seven steps adjusted, the eighth on as is). */
    public static CoefficientSchedule polarExpress() {
        double s = POLAR_EXPRESS_SAFETY;
        List<Coefficients> safe = POLAR_EXPRESS_RAW.stream()
                .map(k -> new Coefficients(k.a() / s, k.b() / (s * s * s), k.c() / (s * s * s * s * s)))
                .toList();
        return new CoefficientSchedule("polar-express", safe, POLAR_EXPRESS_TAIL, s);
    }

    /** The same coefficients at every step. */
    public static CoefficientSchedule constant(Coefficients coefficients) {
        return new CoefficientSchedule("constant" + coefficients, List.of(), coefficients, 1.0);
    }

    /** A user's list: step i uses the i-th triple, steps past the end reuse the last one. */
    public static CoefficientSchedule of(List<Coefficients> steps) {
        if (steps.isEmpty()) {
            throw new IllegalArgumentException("a coefficient list needs at least one (a, b, c) triple");
        }
        return new CoefficientSchedule("custom", steps.subList(0, steps.size() - 1), steps.getLast(), 1.0);
    }

    /** The coefficients of step {@code step} (0-based). */
    public Coefficients at(int step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        return step < perStep.size() ? perStep.get(step) : tail;
    }
}
