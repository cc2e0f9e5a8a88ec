"""Errors a user can cause. Each message names the file, key or value and what to do."""


class DepthDifError(Exception):
    """Base class of every user-facing DepthDif error."""


class ConfigError(DepthDifError):
    """The configuration does not match the schema."""


class DataError(DepthDifError):
    """An input file is missing, unreadable or not of the expected shape."""


class CredentialsError(DepthDifError):
    """Copernicus Marine credentials are missing."""


class NoPatchesError(DataError):
    """No patch survived the nodata filter."""


class TrainingError(DepthDifError):
    """Training cannot continue (NaN/inf loss, bad checkpoint)."""
