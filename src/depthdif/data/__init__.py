"""Data stage: retrieval of raw CF files, patch extraction, spatial split, index and stats.

Modules are imported on demand (``from depthdif.data import cf``) so that light users
(e.g. the workflow's period listing) do not pay for xarray/scipy imports.
"""
