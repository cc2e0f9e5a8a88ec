"""Route a workflow job's logging, stdout and stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


def _launched_rank() -> int:
    """The rank of a process Lightning's DDP launcher started (0 otherwise)."""
    for var in ("LOCAL_RANK", "RANK"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


@contextlib.contextmanager
def log_to(path: str | os.PathLike[str] | None) -> Iterator[logging.Logger]:
    """Send everything the job prints to `path`; a failure's traceback lands there too.

    The exception is re-raised so Snakemake marks the job failed and removes its outputs.
    """
    logger = logging.getLogger("depthdif")
    rank = _launched_rank()
    if path is not None and rank > 0:
        # a DDP rank Lightning started by re-running the job's script: its own file, so
        # rank 0's log (the rule's log) is neither truncated nor interleaved
        path = Path(f"{path}.rank{rank}")
    if path is None:
        logging.basicConfig(level=logging.INFO)
        yield logger
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield logger
        except BaseException as error:
            stream.write(f"\nERROR: {type(error).__name__}: {error}\n")
            traceback.print_exc(file=stream)
            # Keep the one-line reason visible on the terminal as well.
            print(f"{type(error).__name__}: {error} (full log: {path})", file=sys.__stderr__)
            raise
        finally:
            root.removeHandler(handler)
