"""Route a workflow job's logging, stdout and stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | os.PathLike[str] | None) -> Iterator[logging.Logger]:
    """Send everything the job prints to `path`; a failure's traceback lands there too.

    The exception is re-raised so Snakemake marks the job failed and removes its outputs.
    """
    logger = logging.getLogger("depthdif")
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
