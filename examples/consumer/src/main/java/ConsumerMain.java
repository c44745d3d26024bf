import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.Backends;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Optimizers;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.List;
import java.util.Random;

/**
 * Muon on one 24×40 matrix W pulled towards a target T (loss ½‖W − T‖², gradient W − T), built
 * against muon4j-core from the local Maven repository. Prints the loss before and after and exits 1
 * unless Muon lowered it.
 */
public class ConsumerMain {
    public static void main(String[] args) {
        int rows = 24, cols = 40;
        Random random = new Random(3);
        float[] target = new float[rows * cols];
        float[] w = new float[rows * cols];
        for (int i = 0; i < target.length; i++) {
            target[i] = (float) random.nextGaussian() * 0.1f;
        }
        Parameter p = Parameter.of("layer.weight", ParamRole.HIDDEN_MATRIX, new int[] {rows, cols}, w, new float[rows * cols]);
        try (Backend backend = Backends.open(BackendConfig.defaults())) {
            HybridOptimizer muon = Optimizers.muon(backend, MuonConfig.moonlight().learningRate(0.02).weightDecay(0).build(), List.of(p));
            double first = loss(w, target);
            for (int step = 0; step < 50; step++) {
                for (int i = 0; i < w.length; i++) {
                    p.gradient()[i] = w[i] - target[i];
                }
                muon.step();
            }
            double last = loss(w, target);
            System.out.printf("muon4j-core from the local repository, %s: loss %.5f -> %.5f after 50 Muon steps%n",
                    backend.description().split(",")[0], first, last);
            if (!(last < 0.5 * first)) {
                System.exit(1);
            }
        }
    }

    private static double loss(float[] w, float[] target) {
        double s = 0;
        for (int i = 0; i < w.length; i++) {
            s += 0.5 * (w[i] - target[i]) * (w[i] - target[i]);
        }
        return s;
    }
}
