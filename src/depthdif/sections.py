"""Read a validated config section into typed settings: a missing key is an error that names it.

The schema (workflow/schemas/config.schema.yaml) is the one place for defaults. The typed
settings built at the script boundary (`ModelSettings`, the objectives, `TrainSettings`,
`SampleSettings`) carry no defaults of their own: each reads its section with these helpers,
so a section that lacks a key fails at once with `config key 'model.diffusion.edm.p_mean' is
missing`, instead of silently using a value that may differ from the schema's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from depthdif.errors import ConfigError


def require(cfg: Mapping[str, Any], name: str, where: str) -> Any:
    """cfg[name]; ConfigError naming `where.name` when the key is absent."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"config key '{where}' must be a section (a mapping of keys), got {cfg!r}")
    if name not in cfg:
        raise ConfigError(
            f"config key '{where}.{name}' is missing: pass the complete validated section "
            "(depthdif.config.validate_config fills in every default from the schema; see config/README.md)"
        )
    return cfg[name]


def section(cfg: Mapping[str, Any], name: str, where: str) -> tuple[Mapping[str, Any], str]:
    """The nested section cfg[name] and its dotted path."""
    return require(cfg, name, where), f"{where}.{name}"


def number(cfg: Mapping[str, Any], name: str, where: str, error: type[ConfigError] = ConfigError) -> float:
    value = require(cfg, name, where)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise error(f"{where}.{name} = {value!r}: must be a number") from None


def optional_number(
    cfg: Mapping[str, Any], name: str, where: str, error: type[ConfigError] = ConfigError
) -> float | None:
    """A number or null (the key itself is required)."""
    return None if require(cfg, name, where) is None else number(cfg, name, where, error)


def integer(cfg: Mapping[str, Any], name: str, where: str) -> int:
    value = require(cfg, name, where)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{name} = {value!r}: must be an integer") from None


def optional_integer(cfg: Mapping[str, Any], name: str, where: str) -> int | None:
    return None if require(cfg, name, where) is None else integer(cfg, name, where)


def flag(cfg: Mapping[str, Any], name: str, where: str) -> bool:
    return bool(require(cfg, name, where))


def choice(
    cfg: Mapping[str, Any], name: str, where: str, options: Collection[str], error: type[ConfigError] = ConfigError
) -> str:
    """A string among `options` (the message lists them)."""
    value = str(require(cfg, name, where))
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise error(f"{where}.{name} = {value!r}: use one of {listed}")
    return value
