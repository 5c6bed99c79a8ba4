"""Overlapped stages: one thread per stage, bounded queues between them, results in input order.

A stage that waits on the GPU, on ONNX Runtime or on OpenCV releases the GIL, so pre-processing of
item n+1, inference of item n and post-processing of item n-1 run at the same time. Bounded queues
give back-pressure: a slow consumer stalls the producers instead of growing memory.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def run_stages(
    items: Iterable[Any], stages: list[Callable[[Any], Any]], *, queue_size: int = 2, policy: str = "wait"
) -> Iterator[Any]:
    """Yield ``stages[-1](...stages[0](item))`` for every item, in order, with the stages overlapped.

    An exception in any stage (or in iterating ``items``) stops every thread and is raised here.
    Closing the generator early (``break``, Ctrl-C) stops the threads and joins them.
    """
    if policy != "wait":
        raise ValueError(f"policy {policy!r} is not supported here")
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    stop = threading.Event()
    queues = [queue.Queue(maxsize=queue_size) for _ in range(len(stages) + 1)]

    def put(target: queue.Queue, value: Any) -> bool:
        while not stop.is_set():
            try:
                target.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def feed() -> None:
        try:
            for item in items:
                if not put(queues[0], item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(queues[0], _Failure(exc))
            return
        put(queues[0], _DONE)

    def work(stage: Callable[[Any], Any], source: queue.Queue, target: queue.Queue) -> None:
        while not stop.is_set():
            try:
                value = source.get(timeout=0.05)
            except queue.Empty:
                continue
            if value is _DONE or isinstance(value, _Failure):
                put(target, value)
                return
            try:
                value = stage(value)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put(target, _Failure(exc))
                return
            if not put(target, value):
                return

    threads = [threading.Thread(target=feed, name="stage-feed", daemon=True)]
    for index, stage in enumerate(stages):
        threads.append(
            threading.Thread(target=work, args=(stage, queues[index], queues[index + 1]), name=f"stage-{index}", daemon=True)
        )
    for thread in threads:
        thread.start()
    try:
        while True:
            value = queues[-1].get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        stop.set()
        for thread in threads:
            thread.join()
