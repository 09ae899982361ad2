"""Output to a reader that went away: `fashionlab train ... 2>&1 | head` must not kill a run part-way.

Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError wherever it happens, here in the
middle of training when an epoch's log line is written. While `closed_pipes_ignored()` is active, sys.stdout
and sys.stderr drop what their reader no longer reads, and the run goes on to its end. The stream's file
descriptor is pointed at os.devnull, as Python's documentation recommends for BrokenPipeError, so that later
writes and the interpreter's flush at exit do not fail again.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator


def _point_at_devnull(stream) -> None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return  # not backed by a file descriptor (a test's capture): nothing is left to fail at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class PipeSafe:
    """A text stream that swallows BrokenPipeError: once its reader is gone, everything written is dropped."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        _point_at_devnull(self._stream)

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the wrapped stream's
        return getattr(self._stream, name)


@contextlib.contextmanager
def closed_pipes_ignored() -> Iterator[None]:
    """sys.stdout and sys.stderr wrapped in PipeSafe for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout = saved[0] if isinstance(saved[0], PipeSafe) else PipeSafe(saved[0])
    sys.stderr = saved[1] if isinstance(saved[1], PipeSafe) else PipeSafe(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what is still buffered meets a closed pipe here, where it is dropped
        sys.stdout, sys.stderr = saved


def silence_closed_streams() -> None:
    """After a BrokenPipeError: point each standard stream whose reader is gone at os.devnull, so that the
    interpreter's flush at exit does not report the error again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _point_at_devnull(stream)
        except (OSError, ValueError):
            pass
