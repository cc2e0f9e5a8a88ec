"""The observation frame: per-patch anomalies around an OI first guess, at the model boundary.

A patch spans a fraction of the training set's range, so in global z-units its structure is
tiny and its level must be inferred from a few observations. The frame removes both burdens:

    level  m_bc  = mean of the observed values of field (b, c)          (0 without observations)
    first guess  g = m + k_*ᵀ (K + ν I)⁻¹ (x_A - m)                      (OI / GP posterior mean)
    its std      s_g² = σ² - k_*ᵀ (K + ν I)⁻¹ k_*                         (OI posterior variance)
    residual     r = (y - g) / ρ_c                                       (what the network models)

K = σ² ρ(|p_i - p_j| / ℓ) over the observed pixels of the same field, k_* the same between
each pixel and the observations, ν the nugget (the OI baseline's own covariance model, fitted
once on the train split). The network sees [A ⊙ (x - m)/s, A, (g - m)/s, s_g/s, eo anomaly]
with s = √(σ² + ν), predicts the residual, and the field is g + ρ r: "no worse than OI" is
the zero output, and observations and field agree by construction. Everything here is
computed from (x, A) only, so the ambient objective builds its frame from Ã.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from depthdif.diffusion.schedule import DiffusionConfigError
from depthdif.eval.oi import fit_oi

COVARIANCES = ("gaussian", "matern32")
SCALE_MODES = ("constant", "first_guess_std", "patch_loo")
#: most OI cross-covariance values (fields × pixels × observations) held at once
_CHUNK_ELEMENTS = 2**25


def correlation(r: Tensor, length_scale: Tensor, covariance: str) -> Tensor:
    """ρ(r): gaussian exp(-r²/2ℓ²); matern32 (1 + √3 r/ℓ) exp(-√3 r/ℓ) (as eval.oi)."""
    if covariance == "gaussian":
        return torch.exp(-0.5 * (r / length_scale).square())
    if covariance == "matern32":
        s = math.sqrt(3.0) * r / length_scale
        return (1.0 + s) * torch.exp(-s)
    raise DiffusionConfigError(f"model.first_guess.covariance = {covariance!r}: use one of {COVARIANCES}")


@dataclass(frozen=True)
class PriorParams:
    """Per-channel OI covariance (normalised units, pixels) and the frame's scales."""

    covariance: str
    length_scale: tuple[float, ...]
    variance: tuple[float, ...]
    nugget: tuple[float, ...]
    residual_scale: tuple[float, ...]  # ρ_c: typical OI error std (normalised units)
    eo_scale: float  # within-patch std of the EO (normalised units); 1 without EO
    scale_mode: str  # constant ρ_c | first_guess_std | patch_loo (see `Frame` scales)
    loo_rms: tuple[float, ...]  # train-mean leave-one-out OI error at the observations
    scale_floor: float = 0.1  # first_guess_std mode: ρ ≥ scale_floor · s (0.1 before the key existed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "covariance": self.covariance, "length_scale": list(self.length_scale),
            "variance": list(self.variance), "nugget": list(self.nugget),
            "residual_scale": list(self.residual_scale), "eo_scale": float(self.eo_scale),
            "scale_mode": self.scale_mode, "loo_rms": list(self.loo_rms), "scale_floor": self.scale_floor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorParams:
        tup = lambda key: tuple(float(v) for v in data[key])  # noqa: E731
        return cls(str(data["covariance"]), tup("length_scale"), tup("variance"), tup("nugget"),
                   tup("residual_scale"), float(data["eo_scale"]), str(data["scale_mode"]), tup("loo_rms"),
                   # checkpoints written before model.first_guess.scale_floor existed used 0.1
                   float(data.get("scale_floor", 0.1)))


@dataclass
class Frame:
    """A batch's first guess and the map between field and residual units (normalised units)."""

    cond: Tensor  # (B, cond_channels, H, W)
    offset: Tensor  # g (B, C, H, W), or 0
    scale: Tensor  # ρ (1, C, 1, 1) or per pixel (B, C, H, W), or 1

    def to_residual(self, y: Tensor) -> Tensor:
        """r = (y - g) / ρ."""
        return (y - self.offset) / self.scale

    def to_field(self, r: Tensor) -> Tensor:
        """y = g + ρ r."""
        return self.offset + self.scale * r

    def repeat(self, k: int) -> Frame:
        """Member-minor repetition (row b·k + m), as `sampler.repeat_for_members`."""
        rep = lambda t: t.repeat_interleave(k, dim=0) if t.ndim == 4 and t.shape[0] > 1 else t  # noqa: E731
        return Frame(rep(self.cond), rep(self.offset), rep(self.scale))


class ObservationPrior(nn.Module):
    """Batched OI first guess and the anomaly frame around it (no trainable parameters)."""

    length_scale: Tensor
    variance: Tensor
    nugget: Tensor
    residual_scale: Tensor

    def __init__(self, params: PriorParams) -> None:
        super().__init__()
        if params.covariance not in COVARIANCES:
            raise DiffusionConfigError(
                f"model.first_guess.covariance = {params.covariance!r}: use one of {COVARIANCES}"
            )
        self.params = params
        for name in ("length_scale", "variance", "nugget", "residual_scale"):
            self.register_buffer(name, torch.tensor(getattr(params, name), dtype=torch.float32), persistent=False)
        self.eo_scale = float(params.eo_scale)

    def patch_factor(self, loo_ms: Tensor, n_obs: Tensor, prior_count: float = 8.0) -> Tensor:
        """How hard this patch is for OI: √((n ē² + n₀ G²)/(n + n₀)) / G, with ē² the patch's mean
        squared leave-one-out error, G the train mean (n₀ pseudo-observations shrink small n)."""
        g2 = torch.tensor(self.params.loo_rms, device=loo_ms.device, dtype=loo_ms.dtype).square()[None]
        n = n_obs.to(loo_ms.dtype)
        return (((n * loo_ms + prior_count * g2) / (n + prior_count)) / g2.clamp_min(1e-12)).sqrt()

    @property
    def anomaly_scale(self) -> Tensor:
        """s_c = √(σ² + ν): the within-patch std of the field."""
        return (self.variance + self.nugget).sqrt()

    def _offset_table(self, h: int, w: int, device: torch.device) -> Tensor:
        """σ_c² ρ(|(dy, dx)| / ℓ_c) for every offset dy ∈ (-H, H), dx ∈ (-W, W), flattened, per level."""
        key = (h, w, str(device))
        if getattr(self, "_table_key", None) != key:
            dy = torch.arange(-(h - 1), h, device=device, dtype=torch.float64)
            dx = torch.arange(-(w - 1), w, device=device, dtype=torch.float64)
            r = torch.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2).reshape(1, -1)
            var = self.variance.to(device, torch.float64)[:, None]
            ell = self.length_scale.to(device, torch.float64)[:, None]
            self._table = var * correlation(r, ell, self.params.covariance)
            self._table_key = key
        return self._table

    @torch.no_grad()
    def interpolate(self, x: Tensor, observed: Tensor, with_level: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(level m, first guess g, its std s_g), each (B, C, ·) float32, from x on `observed`;
        with_level False: m = 0 (simple kriging: g → 0 away from the observations)."""
        level, guess, std, _, _ = self.interpolate_with_loo(x, observed, with_level)
        return level, guess, std

    @torch.no_grad()
    def interpolate_with_loo(
        self, x: Tensor, observed: Tensor, with_level: bool = True
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """`interpolate` plus, per field, the mean squared leave-one-out OI error at the
        observations, e_i = α_i / (K⁻¹)_ii (closed form), and the number of observations."""
        b, c, h, w = x.shape
        dev = x.device
        f64 = torch.float64 if dev.type == "cpu" else torch.float32  # the small n×n algebra
        values = x.to(f64).reshape(b * c, h * w)
        obs = (observed > 0.5).reshape(b * c, h * w)
        n_obs = obs.sum(1)
        level = (values * obs).sum(1) / n_obs.clamp_min(1) if with_level else values.new_zeros(b * c)
        ch = torch.arange(b * c, device=dev) % c
        var = self.variance.to(f64)[ch]
        nug = self.nugget.to(f64)[ch]
        n_max = max(int(n_obs.max()), 1)
        # the observed pixels of each field first (stable order), padded to n_max
        order = torch.argsort((~obs).to(torch.int8), dim=1, stable=True)[:, :n_max]
        used = torch.arange(n_max, device=dev)[None] < n_obs[:, None]
        oy, ox = order // w, order % w  # (F, n)
        # covariance by pixel offset: one (2H-1)×(2W-1) table per level, gathered, no distances
        table = self._offset_table(h, w, dev)  # (C, (2H-1)(2W-1)) float64
        width = 2 * w - 1

        # flat table index of offset (a - b) = base(a) - position(b)
        def base(ay: Tensor, ax: Tensor) -> Tensor:
            return (ay + h - 1) * width + ax + w - 1

        def position(by: Tensor, bx: Tensor) -> Tensor:
            return by * width + bx

        f = b * c
        pos = position(oy, ox)  # (F, n)
        gram_idx = (base(oy, ox)[:, :, None] - pos[:, None, :]).reshape(f, -1)
        gram = torch.gather(table[ch].to(f64), 1, gram_idx).reshape(f, n_max, n_max)
        v = torch.where(used, values.gather(1, order) - level[:, None], 0.0)
        pair = used[:, :, None] & used[:, None, :]
        eye = torch.eye(n_max, device=dev, dtype=f64)
        diag = torch.where(used, (nug + 1e-6 * var)[:, None], 1.0)
        gram = torch.where(pair, gram, 0.0) + eye * diag[:, :, None]
        chol, info = torch.linalg.cholesky_ex(gram)
        if bool((info > 0).any()):
            chol = torch.linalg.cholesky(gram + eye * (1e-3 * var)[:, None, None])
        alpha = torch.cholesky_solve(v[:, :, None], chol)  # (F, n, 1)
        k_inv = torch.cholesky_inverse(chol)
        k_inv_diag = k_inv.diagonal(dim1=1, dim2=2)
        k_inv32 = (k_inv * pair).float()
        loo = torch.where(used, alpha[..., 0] / k_inv_diag, 0.0)
        loo_ms = loo.square().sum(1) / n_obs.clamp_min(1)
        # the (F, n, HW) products in float32 (batched matmuls): g = m + αᵀk_*, s_g² = σ² - k_*ᵀ K⁻¹ k_*.
        # k_*(p) for an observation at o is the table window starting at offset (H-1-o_y, W-1-o_x):
        # an unfolded view of the table, indexed per observation (no (F, HW, n) index tensor).
        # Padded observations need no masking: their α and K⁻¹ rows/columns are 0.
        guess = torch.empty(f, h * w, device=dev)
        std = torch.empty(f, h * w, device=dev)
        windows = table.float().reshape(c, 2 * h - 1, width).unfold(1, h, 1).unfold(2, w, 1)  # (C, H, W, H, W)
        wy, wx = h - 1 - oy, w - 1 - ox
        step = max(1, _CHUNK_ELEMENTS // (h * w * n_max))
        for lo in range(0, f, step):
            sl = slice(lo, lo + step)
            k_star = windows[ch[sl, None], wy[sl], wx[sl]].reshape(-1, n_max, h * w)  # (k, n, HW)
            guess[sl] = level[sl, None].float() + (alpha[sl].float().transpose(1, 2) @ k_star)[:, 0]
            explained = ((k_inv32[sl] @ k_star) * k_star).sum(1)
            std[sl] = (var[sl, None].float() - explained).clamp_min(0).sqrt()
        shape = (b, c, h, w)
        return (level.reshape(b, c, 1, 1).float(), guess.reshape(shape).float(), std.reshape(shape).float(),
                loo_ms.reshape(b, c).float(), n_obs.reshape(b, c))

    @torch.no_grad()
    def increment(self, field: Tensor, x: Tensor, observed: Tensor, length_px: float | None = None) -> Tensor:
        """field + k_*ᵀ K⁻¹ d, the zero-mean OI of its misfit d = A ⊙ (x − field), each (N, C, H, W).

        The field then meets its observations (exactly with a zero nugget) and the correction fades
        with distance from them, so no step is left next to an observation. `length_px`: the
        kernel's length scale (pixels; None: the fitted one) — a short one keeps the correction local."""
        prior = self if length_px is None else self._with_length(float(length_px))
        misfit = torch.where(observed > 0.5, x - field, torch.zeros_like(field))
        _, correction, _ = prior.interpolate(misfit, observed, with_level=False)
        return field + correction.to(field.dtype)

    def _with_length(self, length_px: float) -> ObservationPrior:
        cache: dict[float, ObservationPrior] = self.__dict__.setdefault("_length_variants", {})
        if length_px not in cache:
            params = replace(self.params, length_scale=(length_px,) * len(self.params.length_scale))
            cache[length_px] = ObservationPrior(params).to(self.variance.device)
        return cache[length_px]

    def item_fields(self, item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The first guess of one item (C, H, W) from its (x, A), as extra dataset arrays
        (`ShardDataset(item_fn=...)`): computed once per patch instead of every step."""
        out = self.interpolate_with_loo(torch.from_numpy(item["x"])[None], torch.from_numpy(item["x_valid"])[None])
        names = ("fg_level", "fg", "fg_std", "fg_loo_ms", "fg_n_obs")
        return {name: t[0].reshape(t.shape[1], *(t.shape[2:] or (1, 1))).float().numpy()
                for name, t in zip(names, out)}

    def frame(
        self, x: Tensor, observed: Tensor, eo: Tensor | None, land: Tensor | None,
        *, use_eo: bool, use_mask_channels: bool, precomputed: dict[str, Tensor] | None = None,
    ) -> Frame:
        """The anomaly frame of a batch from (x, A) (pass Ã for the ambient objective);
        `precomputed`: the batch's `item_fields` (fg_level, fg, fg_std, fg_loo_ms, fg_n_obs)."""
        if precomputed is not None:
            level, guess, guess_std = precomputed["fg_level"], precomputed["fg"], precomputed["fg_std"]
            loo_ms, n_obs = precomputed["fg_loo_ms"][..., 0, 0], precomputed["fg_n_obs"][..., 0, 0]
        else:
            level, guess, guess_std, loo_ms, n_obs = self.interpolate_with_loo(x, observed)
        s = self.anomaly_scale.to(x.dtype)[None, :, None, None]
        a = (observed > 0.5).to(x.dtype)
        parts = [a * (x - level) / s]
        if use_mask_channels:
            parts.append(a)
        parts += [(guess - level) / s, guess_std / s]
        if use_eo:
            if eo is None:
                raise DiffusionConfigError(
                    "model.conditioning.eo is true but the batch has no 'eo': set data.eo to "
                    "'surface' or 'ostia', or model.conditioning.eo to false"
                )
            parts.append(eo_anomaly(eo, land, self.eo_scale))
        scale = self.residual_scale.to(x.dtype)[None, :, None, None]
        if self.params.scale_mode == "first_guess_std":
            scale = torch.maximum(guess_std.to(x.dtype), self.params.scale_floor * s)
        elif self.params.scale_mode == "patch_loo":
            scale = scale * self.patch_factor(loo_ms, n_obs).to(x.dtype)[:, :, None, None]
        return Frame(torch.cat(parts, dim=1), guess.to(x.dtype), scale)


def eo_anomaly(eo: Tensor, land: Tensor | None, scale: float) -> Tensor:
    """(eo - its ocean mean over the patch) / scale, 0 on land."""
    ocean = torch.ones_like(eo) if land is None else (land < 0.5).to(eo.dtype)
    mean = (eo * ocean).sum((-2, -1), keepdim=True) / ocean.sum((-2, -1), keepdim=True).clamp_min(1)
    return ocean * (eo - mean) / scale


def fit_prior(
    fields: np.ndarray,
    valid: np.ndarray,
    masks: np.ndarray,
    eo: np.ndarray | None,
    land: np.ndarray | None,
    *,
    covariance: str,
    max_fit_patches: int,
    scale_mode: str,
    scale_floor: float,
    support: np.ndarray | None = None,
    exact: bool,
) -> PriorParams:
    """Fit the frame on training arrays (normalised units, (N,C,H,W)).

    The covariance is the OI baseline's variogram fit (`eval.oi.fit_oi`) of `fields`
    on `valid`: dense truth for standard/unet, the observations themselves (fields = x,
    valid = A) for ambient, so ambient never sees dense truth. ρ_c is the mean OI posterior
    std over the `support` pixels (the ocean, default `valid`) of the fitted patches under
    their own masks `masks` (from the covariance alone, no truth needed); the EO scale is its
    mean within-patch std. `exact`: drop the fitted nugget (ν = 0, its variance moved into
    σ²), so the first guess passes through the observations and the residual there is 0.
    """

    oi = fit_oi(fields, valid, covariance=covariance, max_fit_patches=max_fit_patches)
    if exact:
        oi = replace(oi, variance=tuple(v + g for v, g in zip(oi.variance, oi.nugget)), nugget=(0.0,) * len(oi.nugget))
    n = len(fields)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_fit_patches)).round().astype(int))
    # unit scales, no LOO factor: only the covariance's posterior std and LOO errors are read from it
    prior = ObservationPrior(PriorParams(covariance, oi.length_scale, oi.variance, oi.nugget,
                                         (1.0,) * len(oi.variance), 1.0, "constant", ()))
    x = torch.from_numpy(np.where(masks[pick], np.nan_to_num(fields[pick]), 0.0).astype(np.float32))
    _, _, std, loo_ms, n_obs = prior.interpolate_with_loo(x, torch.from_numpy(masks[pick].astype(np.float32)))
    has = n_obs >= 2
    loo_rms = tuple(
        float(max(math.sqrt(float(loo_ms[:, k][has[:, k]].mean())) if bool(has[:, k].any()) else 1.0, 1e-6))
        for k in range(fields.shape[1])
    )
    where = torch.from_numpy(np.asarray((valid if support is None else support)[pick], bool))
    residual = tuple(
        float(max(math.sqrt(float(std[:, k][where[:, k]].square().mean())) if bool(where[:, k].any()) else 1.0, 1e-3))
        for k in range(fields.shape[1])
    )
    eo_scale = 1.0
    if eo is not None:
        e = np.asarray(eo[pick, 0], np.float64)
        ocean = np.ones_like(e, bool) if land is None else ~np.asarray(land[pick], bool)
        count = ocean.sum((-2, -1))
        mean = np.where(ocean, e, 0).sum((-2, -1)) / np.maximum(count, 1)
        var = np.where(ocean, (e - mean[:, None, None]) ** 2, 0).sum((-2, -1)) / np.maximum(count, 1)
        eo_scale = float(max(math.sqrt(var[count > 0].mean()) if (count > 0).any() else 1.0, 1e-3))
    if scale_mode not in SCALE_MODES:
        raise DiffusionConfigError(f"model.first_guess.residual_scale = {scale_mode!r}: use one of {SCALE_MODES}")
    return PriorParams(covariance, oi.length_scale, oi.variance, oi.nugget, residual, eo_scale, scale_mode, loo_rms,
                       scale_floor)


def identity_frame(cond: Tensor) -> Frame:
    """The global-normalisation frame (no first guess): residual = field."""
    zero = cond.new_zeros(())
    one = cond.new_ones(())
    return Frame(cond, zero, one)
