"""Evaluation: classical baselines (`baselines`: idw and the workflow entry; `oi`: optimal
interpolation and oi_eo; `per_field`: their per-field loop), metrics in degC (`metrics`), per-patch
scoring and summaries (`scoring`). Submodules are imported explicitly (baselines needs torch
via depthdif.dataset; metrics and scoring do not)."""
