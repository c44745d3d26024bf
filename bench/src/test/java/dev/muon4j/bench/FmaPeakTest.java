package dev.muon4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The FMA probe computes what it claims and reports a rate in a plausible range. */
class FmaPeakTest {

    @Test
    void chainsComputeTheAffineRecurrence() {
        // x ← 0.999999·x + 1e-7 from 1.0 … 2.1 in steps of 0.1, three steps, summed over the chains and lanes
        double expected = 0;
        for (int c = 0; c < FmaPeak.CHAINS; c++) {
            double x = 1.0 + 0.1 * c;
            for (int i = 0; i < 3; i++) {
                x = x * 0.999_999 + 1e-7;
            }
            expected += x;
        }
        expected *= FmaPeak.lanes();
        assertEquals(expected, FmaPeak.chains(3), 1e-4 * expected);
    }

    @Test
    void rateIsPositiveAndBelowWhatAnyCoreDoes() {
        double one = FmaPeak.gflops(1, 2);
        // a core retires at most a few 512-bit FMAs per cycle at a few GHz: far below 1,000 GFLOP/s
        assertTrue(one > 0.5 && one < 1000, "measured " + one);
        assertTrue(FmaPeak.lanes() >= 4, "lanes " + FmaPeak.lanes());
        assertThrows(IllegalArgumentException.class, () -> FmaPeak.gflops(0, 1));
    }
}
