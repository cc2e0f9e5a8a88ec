"""Leave-floats-out validation: which Argo floats are withheld from the observations.

Whole floats, not single profiles: a float's profiles lie along one track, ten days and tens of
kilometres apart, so withholding one profile while keeping its neighbours on the same float would
score an interpolation between two measurements of that float (and their shared sensor error).
The choice depends only on the platform ids, `holdout_floats` and `holdout_seed`, never on the
patch split or the period: a withheld float is withheld in every split and month.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from depthdif.errors import ConfigError, DataError
from depthdif.io import seed_for


def holdout_platforms(platforms: Iterable[str], share: float, seed: int, *, where: str = "holdout_floats"
                      ) -> set[str]:
    """The withheld floats: of the F distinct `platforms`, the k = round(share·F) (at least 1, at most
    F - 1) with the smallest seed_for("holdout_floats", seed, platform); share = 0: none.

    Ranking by a hash makes the draw a seeded random permutation that needs no state and no order
    of the input. `where` names the config key in the errors (e.g. scenarios.real.holdout_floats).
    """
    share = float(share)
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"config key '{where}': {share} is not a share of floats in [0, 1)")
    if share == 0.0:
        return set()
    unique = sorted({str(p) for p in platforms})
    if len(unique) < 2:
        raise DataError(
            f"config key '{where}' = {share} withholds floats for validation, but the Argo files hold "
            f"{len(unique)} float(s) {unique}: at least 2 are needed (one kept, one withheld); add floats "
            "to argo_paths or set holdout_floats to 0"
        )
    k = min(max(math.floor(share * len(unique) + 0.5), 1), len(unique) - 1)
    ranked = sorted(unique, key=lambda p: (seed_for("holdout_floats", int(seed), p), p))
    return set(ranked[:k])
