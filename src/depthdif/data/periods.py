"""Period labels: monthly ``YYYY-MM`` units of retrieval, or ``tNNNN`` time indices."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from depthdif.errors import ConfigError

#: a period label, monthly ``YYYY-MM`` or a time index ``tNNNN`` (the workflow's wildcard constraint)
PERIOD_PATTERN = r"[0-9]{4}-[0-9]{2}|t[0-9]{4}"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_INDEX = re.compile(r"^t(\d{4})$")


def list_periods(data_cfg: dict[str, Any]) -> list[str]:
    """Monthly labels from ``data.periods`` {start, end} (inclusive), or the explicit list."""
    periods = data_cfg["periods"]
    if isinstance(periods, dict):
        start, end = month_number(periods["start"]), month_number(periods["end"])
        if end < start:
            raise ConfigError(
                f"config key 'data.periods': end {periods['end']!r} is before start "
                f"{periods['start']!r}; swap them."
            )
        return [month_label(m) for m in range(start, end + 1)]
    labels = [str(p) for p in periods]
    for label in labels:
        if not (_MONTH.match(label) or _INDEX.match(label)):
            raise ConfigError(
                f"config key 'data.periods': {label!r} is neither 'YYYY-MM' nor 'tNNNN'."
            )
        if _MONTH.match(label):
            month_number(label)  # validates the month
    if len(set(labels)) != len(labels):
        raise ConfigError(f"config key 'data.periods': duplicated labels in {labels}.")
    return labels


def is_index_period(period: str) -> bool:
    """True for ``tNNNN`` labels (a time index into a non-monthly axis)."""
    return bool(_INDEX.match(period))


def time_index(period: str) -> int:
    """NNNN of a ``tNNNN`` label."""
    match = _INDEX.match(period)
    if not match:
        raise ValueError(f"{period!r} is not a 'tNNNN' period label")
    return int(match.group(1))


def month_number(period: str) -> int:
    """Months since 1970-01 of a ``YYYY-MM`` label (1970-01 -> 0)."""
    match = _MONTH.match(period)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"period {period!r} is not a valid 'YYYY-MM' month (data.periods).")
    return (int(match.group(1)) - 1970) * 12 + int(match.group(2)) - 1


def month_label(number: int) -> str:
    """Inverse of :func:`month_number`."""
    year, month = divmod(number, 12)
    return f"{year + 1970:04d}-{month + 1:02d}"


def period_bounds(period: str) -> tuple[np.datetime64, np.datetime64] | None:
    """[start, end) of a monthly period as datetime64[ns]; None for ``tNNNN`` labels."""
    if is_index_period(period):
        return None
    start = np.datetime64(period, "M")
    return start.astype("datetime64[ns]"), (start + 1).astype("datetime64[ns]")
