package dev.muon4j.train;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;

/**
 * A checkpoint's {@code trainer.json}: where the run stood when it was saved.
 *
 * @param step         optimizer steps taken
 * @param tokens       training tokens seen
 * @param dataPosition micro-batches drawn from the data (step × accumulation)
 * @param seed         the seed of the initial weights and the data order
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
record TrainerState(long step, long tokens, long dataPosition, long seed) {
}
