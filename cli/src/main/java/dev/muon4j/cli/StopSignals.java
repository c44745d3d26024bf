package dev.muon4j.cli;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * Two-stage handling of the POSIX signals that ask this process to stop: the first of them (any of
 * the installed ones) runs one action, every later one another. The actions run on the JVM's
 * signal-dispatch thread for that signal, one new thread per delivery, so a second signal is handled
 * while the first one's action is still running.
 *
 * <p>A signal that was ignored when the JVM started (SIGINT of a job started in the background by a
 * shell without job control, SIGHUP under {@code nohup}) stays ignored: the JVM does not hand it
 * out, and {@link #ignored()} names it. A signal the JVM keeps for itself (all of them under
 * {@code -Xrs}) keeps its default action, and {@link #refused()} names it. {@link #close()} puts back
 * the handlers that were there before.
 */
final class StopSignals implements AutoCloseable {
    private final Map<Signal, SignalHandler> previous = new LinkedHashMap<>();
    private final List<String> ignored = new ArrayList<>();
    private final List<String> refused = new ArrayList<>();
    private final AtomicInteger received = new AtomicInteger();

    private StopSignals() {
    }

    /**
     * Handles {@code signals} (names without "SIG": "INT", "TERM", "USR1") from now on.
     *
     * @param first told the first signal's name ("SIGINT")
     * @param again told the name of each later signal
     * @throws IllegalArgumentException when a name is not a signal of this system
     */
    static StopSignals install(List<String> signals, Consumer<String> first, Consumer<String> again) {
        StopSignals s = new StopSignals();
        SignalHandler handler = sig -> {
            String name = "SIG" + sig.getName();
            if (s.received.getAndIncrement() == 0) {
                first.accept(name);
            } else {
                again.accept(name);
            }
        };
        try {
            for (String name : signals) {
                Signal sig;
                try {
                    sig = new Signal(name);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("SIG" + name + " is not a signal of this system: " + e.getMessage(), e);
                }
                SignalHandler old;
                try {
                    old = Signal.handle(sig, handler);
                } catch (IllegalArgumentException e) {
                    s.refused.add("SIG" + name); // the JVM keeps it (SIGQUIT; all of them under -Xrs)
                    continue;
                }
                s.previous.put(sig, old);
                if (old == SignalHandler.SIG_IGN) {
                    s.ignored.add("SIG" + name);
                }
            }
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
        return s;
    }

    /** How many of the signals have arrived so far. */
    int received() {
        return received.get();
    }

    /** The signals that were ignored when this process started and so stay ignored ("SIGINT"). */
    List<String> ignored() {
        return List.copyOf(ignored);
    }

    /** The signals the JVM would not hand out, which keep their default action ("SIGTERM"). */
    List<String> refused() {
        return List.copyOf(refused);
    }

    /** Puts back the handlers that were installed before. */
    @Override
    public void close() {
        previous.forEach((sig, old) -> {
            if (old != SignalHandler.SIG_IGN) {
                Signal.handle(sig, old);
            }
        });
        previous.clear();
    }

    /** The number of signal {@code name} ("USR1") on this system. */
    static int number(String name) {
        return new Signal(name).getNumber();
    }

    private static final class Kill {
        static final MethodHandle KILL = Linker.nativeLinker().downcallHandle(
                Linker.nativeLinker().defaultLookup().find("kill").orElseThrow(() -> new UnsatisfiedLinkError("no kill() in the C library")),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    }

    /**
     * Sends signal {@code name} ("USR1") to process {@code pid}, as {@code kill -USR1 pid} does.
     *
     * @return false when no such process exists any more
     * @throws IllegalStateException when the signal could not be sent for another reason
     */
    static boolean send(long pid, String name) {
        int result;
        try {
            result = (int) Kill.KILL.invokeExact((int) pid, number(name));
        } catch (Throwable t) {
            throw new IllegalStateException("cannot send SIG" + name + " to process " + pid + ": " + t, t);
        }
        if (result != 0) {
            if (!ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                return false;
            }
            throw new IllegalStateException("kill(" + pid + ", SIG" + name + ") failed");
        }
        return true;
    }
}
