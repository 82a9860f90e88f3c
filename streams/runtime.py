"""How a stream process runs its Python: the garbage collector's pace."""

import gc

GC_THRESHOLDS = (100_000, 20, 100)
"""Allocations between young collections, and how many of each before an older one (CPython's default is
(700, 10, 10))."""


def tune_gc() -> None:
    """The stream path allocates many short-lived objects per event while it keeps a large, long-lived heap
    (the owned states it holds in memory), which CPython's default pace traverses over and over: on the
    seed-7 city ``antifraud detect`` ran at 13,000 events per CPU-second with the defaults and 24,000 with
    these. Objects alive by now (modules, configuration) are frozen out of collections. Only collections of
    reference cycles wait longer; nothing the stream path keeps is a cycle it relies on freeing."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
