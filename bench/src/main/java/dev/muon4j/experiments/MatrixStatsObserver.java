package dev.muon4j.experiments;

import dev.muon4j.linalg.Lapack;
import dev.muon4j.linalg.SvdEntropy;
import dev.muon4j.nn.LanguageModel;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.Parameter;
import dev.muon4j.train.StepObserver;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Takes {@link Measurements} of a run's steps, for every parameter of two or more dimensions (the
 * hidden matrices, stacks of experts counted whole, the embedding and the head):
 *
 * <ul>
 * <li>{@code update_rms}: name → RMS of the step's update per unit learning rate, u = (W·(1 − η·λ) − W′)/η,
 * where W and W′ are the weights before and after the step, η the parameter's learning rate in this step
 * (its base rate times the schedule's factor) and λ its weight decay. Both optimizers apply
 * W′ = W·(1 − η·λ) − η·U (Muon: U = s·O with its shape scale s; AdamW: U = m̂/(√v̂ + ε)), so u is U
 * itself, the quantity whose RMS Moonlight matches (arXiv 2502.16982, §2.2). Computed in double from
 * the float weights.</li>
 * <li>{@code weight_rms}: name → RMS of the weights after the step.</li>
 * <li>{@code layer_output_rms}: per block, the RMS of its output over the step's forward passes
 * ({@link LanguageModel#layerOutputRms()}).</li>
 * <li>{@code svd_entropy}: for every hidden matrix (a parameter with a {@link MatrixLayout}), the SVD entropy
 * ({@link SvdEntropy}) of its weights after the step, from their singular values by LAPACK ({@link Lapack}):
 * name → the value, or for a stack of experts name → one value per expert, each expert its own matrix.</li>
 * </ul>
 * Values are rounded to 6 significant digits; one that is undefined (a learning rate of 0) is null.
 */
final class MatrixStatsObserver implements StepObserver {
    private final Measurements what;
    private final List<HybridOptimizer.Assignment> observed = new ArrayList<>();
    private float[][] before;
    private double[] layerOutputs;
    private Lapack lapack;

    MatrixStatsObserver(Measurements what) {
        this.what = what;
    }

    @Override
    public void start(LanguageModel model, List<HybridOptimizer.Assignment> assignments) {
        observed.clear();
        for (HybridOptimizer.Assignment a : assignments) {
            if (a.parameter().shape().length >= 2) {
                observed.add(a);
            }
        }
        if (what.svdEntropy() && lapack == null) {
            lapack = Lapack.openBundled();
        }
        before = what.updateRms() ? new float[observed.size()][] : null;
        if (before != null) {
            for (int i = 0; i < observed.size(); i++) {
                before[i] = new float[observed.get(i).parameter().size()];
            }
        }
    }

    @Override
    public boolean observes(long step) {
        return step == 1 || step % what.every() == 0;
    }

    @Override
    public void beforeForward(long step, LanguageModel model) {
        if (what.layerOutputRms()) {
            model.recordLayerOutputs(true);
        }
    }

    @Override
    public void beforeUpdate(long step, LanguageModel model) {
        if (what.layerOutputRms()) {
            layerOutputs = model.layerOutputRms();
            model.recordLayerOutputs(false);
        }
        if (before != null) {
            for (int i = 0; i < observed.size(); i++) {
                Parameter p = observed.get(i).parameter();
                System.arraycopy(p.value(), 0, before[i], 0, p.size());
            }
        }
    }

    @Override
    public Map<String, Object> afterUpdate(long step, double lrFactor, LanguageModel model) {
        Map<String, Object> fields = new LinkedHashMap<>();
        if (what.updateRms()) {
            Map<String, Object> rms = new LinkedHashMap<>();
            for (int i = 0; i < observed.size(); i++) {
                HybridOptimizer.Assignment a = observed.get(i);
                rms.put(a.parameter().name(), round(updateRms(before[i], a.parameter().value(), a.parameter().size(),
                        lrFactor * a.learningRate(), a.weightDecay())));
            }
            fields.put("update_rms", rms);
        }
        if (what.weightRms()) {
            Map<String, Object> rms = new LinkedHashMap<>();
            for (HybridOptimizer.Assignment a : observed) {
                rms.put(a.parameter().name(), round(rms(a.parameter().value(), a.parameter().size())));
            }
            fields.put("weight_rms", rms);
        }
        if (what.layerOutputRms()) {
            List<Object> rms = new ArrayList<>();
            for (double v : layerOutputs) {
                rms.add(round(v));
            }
            fields.put("layer_output_rms", rms);
        }
        if (what.svdEntropy()) {
            Map<String, Object> entropy = new LinkedHashMap<>();
            for (HybridOptimizer.Assignment a : observed) {
                MatrixLayout m = a.parameter().layout();
                if (m == null) {
                    continue;
                }
                List<Object> perExpert = new ArrayList<>();
                for (int e = 0; e < m.count(); e++) {
                    perExpert.add(round(svdEntropy(lapack, a.parameter().value(), e * m.fanOut() * m.fanIn(), m.fanOut(), m.fanIn())));
                }
                entropy.put(a.parameter().name(), m.count() == 1 ? perExpert.getFirst() : perExpert);
            }
            fields.put("svd_entropy", entropy);
        }
        return fields;
    }

    /** The SVD entropy of the rows × cols matrix at {@code w[offset..]}; NaN where it is undefined (a zero matrix). */
    static double svdEntropy(Lapack lapack, float[] w, int offset, int rows, int cols) {
        float[] sigma = lapack.singularValues(w, offset, rows, cols);
        return SvdEntropy.defined(sigma) ? SvdEntropy.of(sigma) : Double.NaN;
    }

    /**
     * RMS of (before·(1 − lr·decay) − after)/lr over the first {@code n} elements; NaN when lr is 0.
     *
     * @param lr    the learning rate the step applied, η
     * @param decay the weight decay λ
     */
    static double updateRms(float[] before, float[] after, int n, double lr, double decay) {
        if (!(lr > 0)) {
            return Double.NaN;
        }
        double keep = 1 - lr * decay;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double u = (before[i] * keep - after[i]) / lr;
            sum += u * u;
        }
        return Math.sqrt(sum / n);
    }

    /** √(Σ v² / n) over the first {@code n} elements. */
    static double rms(float[] v, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += (double) v[i] * v[i];
        }
        return Math.sqrt(sum / n);
    }

    /** {@code v} to 6 significant digits, or null when it is not finite (JSON holds no NaN). */
    static Double round(double v) {
        if (!Double.isFinite(v)) {
            return null;
        }
        return v == 0 ? 0.0 : Double.parseDouble(String.format(java.util.Locale.ROOT, "%.6g", v));
    }
}
