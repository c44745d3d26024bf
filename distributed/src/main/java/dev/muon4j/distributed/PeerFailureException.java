package dev.muon4j.distributed;

/**
 * This rank stopped because another rank failed (it aborted the group, or reported an error that
 * every rank must stop on); the other rank's error is the one that says why.
 */
public class PeerFailureException extends IllegalStateException {
    public PeerFailureException(String message) {
        super(message);
    }

    public PeerFailureException(String message, Throwable cause) {
        super(message, cause);
    }
}
