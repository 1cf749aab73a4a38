"""One way to time things, shared by the latency lesson and the benchmarks: median over repeats after a warm-up."""

import statistics
import time

__all__ = ["median_seconds"]


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Return the median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):  # first calls allocate buffers and pick kernels
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
