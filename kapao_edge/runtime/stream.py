"""Streams: frames from any source through a pipeline's stages, overlapped, results in frame order.

``run_stages`` is generic: one thread reads the source, one thread runs each stage, bounded queues
link them (a slow consumer blocks the stages instead of growing memory), and the consumer gets the
last stage's outputs in input order, since every link is a single FIFO. Two policies for the link
from the reader to the first stage:

- ``wait``: the reader blocks when the queue is full; every frame is processed (files, folders).
- ``latest``: the reader never blocks; a frame nobody has taken yet is replaced by the newer one and
  counted as dropped, so a live camera's latency stays at about one frame instead of growing.

``stream(pipeline, source)`` runs a pipeline's stage split (preprocess | infer | postprocess) this
way; post-processing (and the tracker inside it) stays on one thread, so it sees frames in order.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from kapao_edge.data.sources import Frame, FrameSource, open_source
from kapao_edge.errors import InputError

Policy = Literal["wait", "latest"]
POLICIES: tuple[str, ...] = ("wait", "latest")

_POLL_S = 0.05  # how often a blocked thread looks at the stop flag
_DONE = object()  # end of stream marker, passed down every link


class _Flag:
    """A stop flag without a lock (unlike threading.Event), so a signal handler can raise it even
    while the main thread is inside ``close``; blocked threads poll it every ``_POLL_S``."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclasses.dataclass
class _Failure:
    """An exception raised by the source or a stage, carried to the consumer to be raised there."""

    error: BaseException


class _LatestSlot:
    """Reader -> first stage link of the ``latest`` policy: keeps the newest ``size`` items.

    ``put`` never blocks: when ``size`` items are waiting, the oldest is discarded and counted.
    End and failure markers are never discarded.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any, stop: _Flag) -> bool:
        with self.cond:
            if isinstance(item, tuple):
                while sum(isinstance(i, tuple) for i in self.items) >= self.size:
                    oldest = next(i for i in self.items if isinstance(i, tuple))
                    self.items.remove(oldest)
                    self.dropped += 1
            self.items.append(item)
            self.cond.notify()
        return not stop.is_set()

    def get(self, stop: _Flag) -> Any:
        with self.cond:
            while not self.items:
                if stop.is_set():
                    return None
                self.cond.wait(_POLL_S)
            return self.items.popleft()


class _Queue:
    """A bounded FIFO whose blocking calls give up when the run is stopped."""

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item: Any, stop: _Flag) -> bool:
        while not stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, stop: _Flag) -> Any:
        while not stop.is_set():
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    def qsize(self) -> int:
        return self.queue.qsize()


def _read(items: Iterable[Any], link, stop: _Flag) -> None:
    """Reader thread: number the items and pass them on; the iterator is created and closed here."""
    iterator = None
    try:
        iterator = iter(items)
        for seq, item in enumerate(iterator):
            if not link.put((seq, item), stop):
                return
        link.put(_DONE, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
        link.put(_Failure(exc), stop)
    finally:
        close = getattr(iterator, "close", None)
        if callable(close) and iterator is not items:
            close()  # a generator's own finally blocks run in the thread that drove it


def _work(stage: Callable[[Any], Any], source, sink: _Queue, stop: _Flag, count_drops: bool) -> None:
    """Stage thread: apply ``stage`` to each item in arrival order; markers pass straight through."""
    taken = 0
    while True:
        envelope = source.get(stop)
        if envelope is None:
            return
        if envelope is _DONE or isinstance(envelope, _Failure):
            sink.put(envelope, stop)
            return
        if count_drops:  # first stage: (seq, item) from the reader; what it never saw was dropped
            seq, item = envelope
            dropped = seq - taken
            taken += 1
        else:
            seq, dropped, item = envelope
        try:
            output = stage(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            sink.put(_Failure(exc), stop)
            return
        if not sink.put((seq, dropped, output), stop):
            return


class StageRun:
    """Iterator over the last stage's outputs, in input order; see ``run_stages``.

    After ``next()`` returns an output, ``dropped_before`` is how many inputs the ``latest`` policy
    dropped before it (cumulative) and ``index`` its position among the inputs. ``close()`` (also run
    at the end, on an error, on ``with`` exit and when the iterator is garbage-collected) stops and
    joins every thread and closes the source.
    """

    def __init__(self, items: Iterable[Any], stages: Sequence[Callable[[Any], Any]], *, queue_size: int = 2,
                 policy: Policy = "wait", join_timeout: float = 10.0) -> None:
        if policy not in POLICIES:
            raise InputError(f"unknown stream policy {policy!r}; choose one of {', '.join(POLICIES)}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise InputError(f"queue_size must be a positive int, got {queue_size!r}")
        if not stages:
            raise InputError("run_stages needs at least one stage")
        self.items, self.policy, self.join_timeout = items, policy, join_timeout
        self.dropped_before = 0
        self.index = -1
        self._stop = _Flag()
        self._closed = False
        first = _LatestSlot(1) if policy == "latest" else _Queue(queue_size)
        links = [first] + [_Queue(queue_size) for _ in stages]
        self._links = links
        self._threads = [threading.Thread(target=_read, args=(items, first, self._stop), name="stream-read", daemon=True)]
        for number, stage in enumerate(stages):
            name = getattr(stage, "__name__", f"stage{number}")
            self._threads.append(threading.Thread(
                target=_work, args=(stage, links[number], links[number + 1], self._stop, number == 0),
                name=f"stream-{name}", daemon=True,
            ))
        for thread in self._threads:
            thread.start()

    @property
    def dropped(self) -> int:
        """Inputs the ``latest`` policy has dropped so far (the reader may be ahead of the consumer)."""
        first = self._links[0]
        return first.dropped if isinstance(first, _LatestSlot) else 0

    def queued(self) -> int:
        """Items waiting in the links between stages now (bounded by the queue sizes)."""
        return sum(len(link.items) if isinstance(link, _LatestSlot) else link.qsize() for link in self._links)

    def __iter__(self) -> StageRun:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            envelope = self._links[-1].get(self._stop)  # KeyboardInterrupt lands here, between polls
        except BaseException:
            self.close()
            raise
        if envelope is None or envelope is _DONE:
            self.close()
            raise StopIteration
        if isinstance(envelope, _Failure):
            self.close()
            raise envelope.error
        self.index, self.dropped_before, output = envelope
        return output

    def stop(self) -> None:
        """Ask every thread to finish; the consumer's next ``next()`` ends the iteration. Signal-safe."""
        self._stop.set()

    def close(self) -> None:
        """Stop the threads, join them and close the source; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(self.join_timeout)
        close = getattr(self.items, "close", None)
        if callable(close):
            try:
                close()
            except ValueError:  # a generator still running in a reader that did not stop in time
                pass

    def __enter__(self) -> StageRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        if sys.is_finalizing():  # interpreter exit: daemon threads are frozen, joining them would wait
            self._stop.set()
            return
        self.close()


def run_stages(items: Iterable[Any], stages: Sequence[Callable[[Any], Any]], *, queue_size: int = 2,
               policy: Policy = "wait") -> StageRun:
    """Run ``stages`` over ``items`` concurrently (one thread each), yielding outputs in input order.

    Links hold at most ``queue_size`` items (``latest``: the reader link holds one, the newest), so
    memory stays bounded whatever the consumer's speed. An exception in the source or a stage is
    raised to the consumer at the position it happened; stopping early (break, close, Ctrl-C) joins
    the threads and calls ``items.close()`` when it exists.
    """
    return StageRun(items, stages, queue_size=queue_size, policy=policy)


# --- poses over a stream ----------------------------------------------------------------------------


@dataclasses.dataclass
class _InFlight:
    """One frame between stages: the frame, the stage's output so far, and its timings (seconds)."""

    frame: Frame
    data: Any
    timings: dict[str, float]
    start: float  # perf_counter when the frame was read


def _timed_frames(frames: FrameSource) -> Iterator[tuple[Frame, float, float]]:
    """(frame, seconds spent reading it, perf_counter at read), driven by the reader thread."""
    iterator = iter(frames)
    try:
        while True:
            begin = time.perf_counter()
            try:
                frame = next(iterator)
            except StopIteration:
                return
            now = time.perf_counter()
            yield frame, now - begin, now
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            close()


def _set_fields(result: Any, **fields: Any) -> Any:
    """Fill a result's stream fields, on a frozen dataclass by copying, else in place."""
    params = getattr(type(result), "__dataclass_params__", None)
    names = {f.name for f in dataclasses.fields(result)} if dataclasses.is_dataclass(result) else set()
    if params is not None and params.frozen and set(fields) <= names:
        return dataclasses.replace(result, **fields)
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def pipeline_stages(pipeline: Any) -> list[Callable[[Any], Any]]:
    """The stage functions for ``pipeline``: its preprocess | infer | postprocess split when it has
    one, else the whole ``pipeline(frame)`` as one stage (still overlapped with reading and the consumer).
    """

    def preprocess(item: tuple[Frame, float, float]) -> _InFlight:
        frame, read_s, start = item
        begin = time.perf_counter()
        prepared = pipeline.preprocess(frame.image_bgr)
        return _InFlight(frame, prepared, {"read": read_s, "preprocess": time.perf_counter() - begin}, start)

    def infer(flight: _InFlight) -> _InFlight:
        begin = time.perf_counter()
        flight.data = pipeline.infer(flight.data)
        flight.timings["infer"] = time.perf_counter() - begin
        return flight

    def postprocess(flight: _InFlight) -> Any:
        begin = time.perf_counter()
        result = pipeline.postprocess(flight.data)  # the tracker, if any, runs here: one thread, in order
        end = time.perf_counter()
        return flight, result, end - begin, end

    def whole(item: tuple[Frame, float, float]) -> Any:
        frame, read_s, start = item
        begin = time.perf_counter()
        result = pipeline(frame.image_bgr)
        end = time.perf_counter()
        return _InFlight(frame, None, {"read": read_s, "pipeline": end - begin}, start), result, None, end

    if all(callable(getattr(pipeline, name, None)) for name in ("preprocess", "infer", "postprocess")):
        return [preprocess, infer, postprocess]
    return [whole]


class PoseStream:
    """Iterator of ``PoseResult`` in frame order over one source; see ``stream``.

    ``source`` is the opened ``FrameSource`` (its ``fps``, ``live``, ``skipped``), ``policy`` the
    policy in use, ``dropped`` the frames dropped so far. At the end of the source, on an error and on
    Ctrl-C the threads are joined and the source (a camera) released; a consumer that stops early
    should use ``with`` (or ``close()``) for the same.
    """

    def __init__(self, run: StageRun, source: FrameSource, policy: Policy) -> None:
        self.run, self.source, self.policy = run, source, policy
        self.frame: Frame | None = None  # the frame of the result ``next()`` returned last (to draw on)

    @property
    def dropped(self) -> int:
        return self.run.dropped

    def __iter__(self) -> PoseStream:
        return self

    def __next__(self) -> Any:
        try:
            flight, result, post_s, end = next(self.run)
        except BaseException:  # the end, a failure or Ctrl-C: threads are joined; release the source too
            self.close()
            raise
        timings = dict(getattr(result, "timings", None) or {})
        timings.update(flight.timings)
        if post_s is not None:
            timings["postprocess"] = post_s
        timings["latency"] = end - flight.start  # read -> poses, including time spent waiting in queues
        self.frame = flight.frame
        return _set_fields(
            result, frame_index=flight.frame.index, timestamp=flight.frame.timestamp,
            dropped=self.run.dropped_before, timings=timings,
        )

    def with_frames(self) -> Iterator[tuple[Frame, Any]]:
        """(frame, result) pairs, for callers that draw on the frame or save it."""
        for result in self:
            yield self.frame, result

    def stop(self) -> None:
        """Ask the run to end after what is in hand: iteration then stops and ``close`` joins.

        Only sets a flag, so a signal handler may call it.
        """
        self.run.stop()

    def close(self) -> None:
        self.run.close()
        self.source.close()

    def __enter__(self) -> PoseStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def stream(
    pipeline: Any,
    source: Any,
    *,
    policy: Policy | None = None,
    queue_size: int = 2,
    strict: bool = False,
    live: bool | None = None,
    retries: int = 3,
    retry_delay: float = 0.5,
    timeout_s: float = 5.0,
    on_warning: Callable[[str], None] | None = None,
) -> PoseStream:
    """Poses for every frame of ``source`` (see ``open_source``), pipelined, in frame order.

    The source opens now, so a missing file, camera or unreachable URL raises ``InputError`` here.
    ``policy`` defaults to ``latest`` for live sources (cameras, RTSP) and ``wait`` otherwise; each
    result carries ``frame_index``, ``timestamp``, ``dropped`` (frames dropped before it) and
    ``timings`` (seconds: read, preprocess, infer, postprocess, latency). Under ``latest`` every link
    holds one frame whatever ``queue_size`` says: a frame waiting between stages is latency too.
    """
    frames = open_source(source, strict=strict, live=live, retries=retries, retry_delay=retry_delay,
                         timeout_s=timeout_s)
    if on_warning is not None:
        frames.on_warning = on_warning
    policy = policy or ("latest" if frames.live else "wait")
    try:
        if policy == "latest":
            queue_size = 1  # frames waiting between stages are latency too
        run = run_stages(_timed_frames(frames), pipeline_stages(pipeline), queue_size=queue_size, policy=policy)
    except BaseException:
        frames.close()
        raise
    return PoseStream(run, frames, policy)
