"""Progress of long loops (judging, answering, training)."""

from __future__ import annotations

from typing import Any


def progress(total: int, desc: str) -> Any:
    """A tqdm bar with counts and ETA on an interactive terminal; silent otherwise (CI, logs)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not sys.stderr.isatty(), leave=False)
