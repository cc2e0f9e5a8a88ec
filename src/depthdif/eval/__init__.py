"""Evaluation: classical baselines (`baselines`), metrics in degC (`metrics`), per-patch
scoring and summaries (`scoring`). Submodules are imported explicitly (baselines needs torch
via depthdif.dataset; metrics and scoring do not)."""
