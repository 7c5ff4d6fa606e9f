"""Resident memory of the running benchmark process (one helper for every benchmark).

Example:
    >>> from benchmarks.memory import rss_mb
    >>> current, peak = rss_mb()
    >>> peak >= current > 0
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["rss_mb"]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB (Linux /proc)."""
    cur = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return cur, peak
