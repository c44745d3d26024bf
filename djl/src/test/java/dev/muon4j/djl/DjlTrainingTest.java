package dev.muon4j.djl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.Backends;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Route;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * A real DJL training on the PyTorch engine with {@link MuonDjlOptimizer}: a 16→32→32→4 MLP learns
 * the classes a random linear teacher gives 256 Gaussian points; the loss must fall to a tenth (it
 * falls from 2.01 to 0.066), and every gradient is zero after each step.
 */
class DjlTrainingTest {
    static final int STEPS = 60;

    @Test
    void lossFallsWithMuonOnAPyTorchMlp() {
        Engine.getEngine("PyTorch").setRandomSeed(3);
        try (Backend backend = Backends.open(new BackendConfig(BackendKind.VECTOR, 1));
             Model model = Model.newInstance("mlp", Device.cpu(), "PyTorch")) {
            SequentialBlock net = new SequentialBlock()
                    .add(Linear.builder().setUnits(32).build()).add(Activation::relu)
                    .add(Linear.builder().setUnits(32).build()).add(Activation::relu)
                    .add(Linear.builder().setUnits(4).build());
            model.setBlock(net);
            Set<String> head = MuonDjlOptimizer.parameterIds(net, path -> path.startsWith("05Linear"));
            assertEquals(2, head.size(), "the head's weight and bias");
            MuonDjlOptimizer muon = MuonDjlOptimizer.builder()
                    .optMuon(MuonConfig.builder().learningRate(0.02).weightDecay(0).build())
                    .optAdamW(AdamWConfig.builder().learningRate(0.01).weightDecay(0).build())
                    .optAdamWFor(head::contains)
                    .optParameterNames(net)
                    .optBackend(backend)
                    .build();
            try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(muon))) {
                trainer.initialize(new Shape(256, 16));
                NDManager m = trainer.getManager();
                NDArray x = m.randomNormal(new Shape(256, 16));
                NDArray labels = x.matMul(m.randomNormal(new Shape(16, 4))).argMax(1);
                float first = Float.NaN;
                float last = Float.NaN;
                for (int step = 0; step < STEPS; step++) {
                    try (GradientCollector collector = trainer.newGradientCollector()) {
                        NDArray logits = trainer.forward(new NDList(x)).singletonOrThrow();
                        NDArray loss = trainer.getLoss().evaluate(new NDList(labels), new NDList(logits));
                        collector.backward(loss);
                        last = loss.getFloat();
                        first = step == 0 ? last : first;
                    }
                    trainer.step();
                }
                for (var p : net.getParameters()) {
                    try (NDArray g = p.getValue().getArray().getGradient()) {
                        assertEquals(0f, g.abs().max().getFloat(), p.getKey() + "'s gradient is zeroed after the step, as DJL's optimizers leave it");
                    }
                }
                System.out.printf("DjlTrainingTest: cross-entropy %.4f -> %.4f in %d steps%n", first, last, STEPS);
                assertTrue(last < first / 10, "loss fell from " + first + " to " + last);
                assertEquals(Map.of("01Linear_weight", Route.MUON, "01Linear_bias", Route.ADAMW,
                        "03Linear_weight", Route.MUON, "03Linear_bias", Route.ADAMW,
                        "05Linear_weight", Route.ADAMW, "05Linear_bias", Route.ADAMW), muon.routes());
            }
        }
    }
}
