"""Overlap reading and writing with the forward: a bounded reader thread and a bounded, ordered writer thread.

``prefetch(items, depth)`` iterates ``items`` (a generator that decodes frames, say) on a reader thread at most
``depth`` items ahead of the consumer; ``Writer(depth)`` runs submitted calls (writing a pair's outputs) in
order on one thread, at most ``depth`` waiting. ``depth=0`` runs both inline, in the caller's thread: the
serial form, with the same calls in the same order (so the same outputs, bit for bit).

Errors keep their type and message: an exception raised by the reader comes out of the consumer's ``next()``
after the items read before it; one raised by a write comes out of the next ``submit`` or of ``close``. Leaving
early (an error, ``KeyboardInterrupt``, ``break``; close the generator, e.g. with ``contextlib.closing``) stops
the reader and joins it; ``Writer.close`` lets the
writes already submitted finish first (each is atomic on its own, see ``pwcflow.files.atomic``), so the
pairs predicted before an error are on disk, as in the serial form.
"""

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
DEPTH = 2  # the callers' default: items read ahead of the forward, and calls waiting to be written
_END = object()
_POLL_S = 0.1  # how often a blocked put/get looks at the stop flag (and lets Ctrl-C through)


class _Failed:
    """An exception raised on the worker thread, carried to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: "queue.Queue", item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True if it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """``items`` produced on a reader thread at most ``depth`` ahead (``depth=0``: inline, no thread)."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for item in items:
                if not _put(q, item, stop):
                    return
            _put(q, _END, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            _put(q, _Failed(exc), stop)

    reader = threading.Thread(target=read, name="pwcflow-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()


class Writer:
    """Runs ``submit(fn, *args)`` calls in order on one thread, at most ``depth`` queued (``depth=0``: inline).

    Use as a context manager: leaving it closes it (waits for the submitted calls; an error of theirs is
    re-raised unless another one is already on its way out).
    """

    def __init__(self, depth: int):
        self.depth = depth
        self.failed: Optional[BaseException] = None  # the first failed call's error (later calls are skipped)
        self.raised = False
        self.stop = threading.Event()
        self.q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.thread: Optional[threading.Thread] = None
        if depth > 0:
            self.thread = threading.Thread(target=self._work, name="pwcflow-writer", daemon=True)
            self.thread.start()

    def _work(self) -> None:
        while True:
            job = self.q.get()
            if job is _END:
                return
            if self.failed is None:  # after a failure the rest is skipped, as the serial loop would stop
                try:
                    job[0](*job[1])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                    self.failed = exc

    def _raise(self) -> None:
        if self.failed is not None and not self.raised:
            self.raised = True
            self.stop.set()
            raise self.failed

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after the calls submitted before (re-raises an earlier call's error first)."""
        if self.thread is None:
            fn(*args)
            return
        self._raise()
        if not _put(self.q, (fn, args), self.stop):
            self._raise()

    def close(self) -> None:
        """Wait for the submitted calls and stop the thread; re-raise the first error of theirs."""
        if self.thread is not None and self.thread.is_alive():
            while not _put(self.q, _END, threading.Event()):
                pass
            self.thread.join()
        self._raise()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close()
            return
        try:  # an error is on its way out: finish the writes submitted before it, keep that error
            self.close()
        except Exception:  # noqa: BLE001 - the error already leaving wins
            pass

