"""Start TensorFlow without burying the user's terminal in native start-up logs.

TensorFlow 2.21's C++ layer prints absl messages before logging is initialised ("oneDNN custom
operations are on", "Could not find cuda drivers", "failed call to cuInit"), which
TF_CPP_MIN_LOG_LEVEL no longer silences. We import TensorFlow and probe its devices with the
process's stderr file descriptor redirected, then replay anything that is not known noise.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} .*(port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc)"
    r"|E\d{4} .*cuda_platform\.cc.*cuInit"
    r"|To enable the following instructions:.*)"
)


@contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Capture fd 2 (native and Python writes alike) and replay only lines that are not noise."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. pytest capture or an embedded interpreter
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


def init_tensorflow(debug: bool = False, before_start: Callable[[], None] | None = None) -> None:
    """Import TensorFlow and start its runtime (listing devices), quietly unless `debug`.

    Args:
        debug: leave TensorFlow's native logs alone.
        before_start: run after the import and before the runtime starts: device set-up that
            TensorFlow accepts only then (logical CPUs, multi-worker collectives).
    """
    if "tensorflow" in sys.modules and before_start is None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not debug:
        # kbuild's attention layers (keras_hub's and its own) take padding masks explicitly; Keras
        # still warns, once per traced call, that their inner projections "destroy" the implicit
        # mask. Every model and decoding loop would print it: noise, not news.
        warnings.filterwarnings("ignore", message=r".*does not support masking and will therefore destroy",
                                category=UserWarning)
        # Bucketed evaluation datasets have no known length, so Keras learns it by running out,
        # and then warns "Your input ran out of data" after every run's final scores. kbuild's
        # training stream repeats (fit.py), so it cannot run dry in training.
        warnings.filterwarnings("ignore", message=r"Your input ran out of data", category=UserWarning)
    with contextlib.nullcontext() if debug else filtered_native_stderr():
        import tensorflow as tf

        if before_start is not None:
            before_start()
        tf.config.list_logical_devices()


@contextmanager
def sigterm_as_interrupt(before: Callable[[], None] | None = None) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so `kill` and Ctrl-C take the same clean-up path;
    `before` runs first (a search passes the signal on to its children). Off the main thread,
    where Python cannot install handlers, signals are left alone."""
    def _raise(signum, frame):
        if before is not None:
            before()
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise KeyboardInterrupt: a file write
    (a checkpoint, a study update) is never cut in half. An HDF5 write interrupted mid-way leaves
    its file open inside h5py, and the clean-up's own save then fails with "unable to truncate a
    file which is already open"."""
    received: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: Python cannot install handlers there
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            raise KeyboardInterrupt
