package dev.muon4j.train;

import dev.muon4j.nn.LanguageModel;
import dev.muon4j.optim.HybridOptimizer;
import java.util.List;
import java.util.Map;

/**
 * Measurements a run takes beyond the trainer's own metrics (the RMS of each matrix's update, of its
 * weights, of each layer's output), written into the measured steps' lines of metrics.jsonl. Optional
 * ({@link RunOptions#withObserver}): a run without one calls nothing and pays nothing.
 *
 * <p>For a step it {@link #observes}, the trainer calls {@link #beforeForward}, runs the step's
 * forward and backward passes, calls {@link #beforeUpdate}, steps the optimizer and calls
 * {@link #afterUpdate} before anything else touches the weights (QK-clip, router balancing). The
 * time these calls take is left out of the step's {@code seconds}. With several data-parallel ranks
 * only rank 0 calls them, so what the forward passes show is rank 0's share of the batch.
 */
public interface StepObserver {
    /**
     * Once per {@link Trainer#run(RunOptions)}, before its first step: the model (with a resumed run's
     * weights restored) and where each parameter goes, with its base learning rate and weight decay.
     */
    default void start(LanguageModel model, List<HybridOptimizer.Assignment> assignments) {
    }

    /** Whether step {@code step} (1-based: the step about to run) is measured. */
    boolean observes(long step);

    /** Before the first forward pass of a measured step. */
    default void beforeForward(long step, LanguageModel model) {
    }

    /** After the backward passes of a measured step, before the optimizer changes the weights. */
    default void beforeUpdate(long step, LanguageModel model) {
    }

    /**
     * After the optimizer step of a measured step.
     *
     * @param lrFactor the schedule's factor of this step: a parameter's learning rate was its base rate times this
     * @return the fields to add to the step's line of metrics.jsonl (snake-case names that the trainer's own fields
     *         do not use; values that JSON holds: numbers, strings, lists, maps); empty for none
     */
    Map<String, Object> afterUpdate(long step, double lrFactor, LanguageModel model);
}
