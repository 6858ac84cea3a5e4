"""Synthetic 4D-STEM data that looks like a real scan, with its ground truth.

:func:`make_4dstem` simulates a scan over a specimen made of

* **vacuum** (left edge of the scan): only the bright-field disk;
* an **amorphous film**: a weaker bright-field disk, a diffuse ring and a halo;
* several **crystalline grains** (Voronoi cells): Bragg disks on a hexagonal
  lattice rotated by the grain's orientation, with grain-specific intensities,
  and a bright-field disk that loses what the grain diffracts.

The whole pattern is displaced by a smooth in-plane field (a scan/descan ramp
plus the gradient of a smooth potential), so centre-of-mass and DPC maps show
it; every pixel gets Poisson noise and the detector's dtype (``uint16`` by
default, clipped at the dtype's maximum like a saturating counter).

Everything the simulation used is returned as a :class:`SyntheticTruth`, so
tests and tutorials can compare an analysis with the truth.

How it stays fast: the disks, ring and halo are drawn once per component, at
8 x 8 sub-pixel positions (templates); each frame is then two gathers from the
templates and one multiply-add, done for blocks of frames at once. Poisson
noise uses an exact inverse-CDF sampler for the many dim pixels and NumPy's
sampler only for the bright ones, in blocks spread over threads (NumPy
releases the GIL there). Each block has its own seed, so the result does not
depend on the number of threads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "make_4dstem",
    "write_npy",
    "write_raw",
    "SyntheticTruth",
    "LABEL_VACUUM",
    "LABEL_AMORPHOUS",
    "FIRST_GRAIN_LABEL",
    "write_mib",
    "write_blo",
    "write_empad",
    "write_mrc",
    "write_tvips",
    "write_dm",
    "write_ser",
    "write_k2is",
]

#: Label of vacuum frames in :attr:`SyntheticTruth.labels`.
LABEL_VACUUM = 0
#: Label of frames on the amorphous film.
LABEL_AMORPHOUS = 1
#: Grain ``g`` (0-based) has label ``FIRST_GRAIN_LABEL + g``.
FIRST_GRAIN_LABEL = 2

# Sub-pixel positions per axis at which templates are drawn (at most; fewer
# for large frames, to keep all templates within _TEMPLATE_BYTES).
_PHASES = 8
_TEMPLATE_BYTES = 64 * 2**20
# Frames per noise block: fixed, so that the data do not depend on the thread count.
_BLOCK_PIXELS = 2**19
# Pixels with a mean count up to this value use the inverse-CDF sampler.
_LOW_LAMBDA = 8.0
# Steps of the inverse-CDF sampler done on all its pixels before compacting.
_STEPS = 5

# Geometry, as fractions of the smaller frame side.
_DISK_RADIUS = 0.04
_LATTICE_SPACING = 0.24
_RING_RADIUS = 0.13
_RING_WIDTH = 0.015
_HALO_WIDTH = 0.12
_MAX_SHIFT = 0.02
_EDGE = 1.0  # width of a disk's soft edge, in pixels


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The ground truth of a synthetic 4D-STEM scan from :func:`make_4dstem`.

    All positions in the detector are ``(y, x)`` in pixels, with ``(0, 0)`` the
    centre of the first pixel.

    Attributes
    ----------
    nav_shape, sig_shape : tuple of int
        The scan and frame shapes.
    labels : numpy.ndarray of int, shape ``nav_shape``
        :data:`LABEL_VACUUM` (0), :data:`LABEL_AMORPHOUS` (1) or
        ``FIRST_GRAIN_LABEL + g`` (2, 3, ...) for grain ``g``.
    thickness : numpy.ndarray of float, shape ``nav_shape``
        Relative specimen thickness (0 in vacuum, about 0.3-0.9 elsewhere).
    shift : numpy.ndarray of float, shape ``nav_shape + (2,)``
        Displacement ``(dy, dx)`` of the whole pattern in each frame, in pixels.
    centre : tuple of float
        Centre ``(cy, cx)`` of the bright-field disk without shift:
        ``((sig_y - 1) / 2, (sig_x - 1) / 2)``.
    radius : float
        Radius of the bright-field disk (and of every Bragg disk), in pixels.
    ring_radius, ring_width : float
        Radius and Gaussian width (sigma) of the amorphous ring, in pixels.
    lattice_spacing : float
        Distance of the first-order Bragg disks from the centre, in pixels.
    grain_angles : numpy.ndarray of float, shape ``(n_grains,)``
        Orientation of each grain's lattice, in radians.
    grain_strengths : numpy.ndarray of float, shape ``(n_grains,)``
        How strongly each grain diffracts (0.2-1.0, all different).
    dose : float
        Mean counts per pixel inside the bright-field disk in vacuum.
    seed : int or None
        The seed the data were made with.

    Examples
    --------
    >>> from udfwidgets.data import make_4dstem
    >>> data, truth = make_4dstem((8, 8), (32, 32), return_truth=True)
    >>> truth.labels.shape, truth.shift.shape, truth.centre
    ((8, 8), (8, 8, 2), (15.5, 15.5))
    """

    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, int]
    labels: np.ndarray
    thickness: np.ndarray
    shift: np.ndarray
    centre: tuple[float, float]
    radius: float
    ring_radius: float
    ring_width: float
    lattice_spacing: float
    grain_angles: np.ndarray
    grain_strengths: np.ndarray
    dose: float
    seed: int | None
    _spots: tuple = ()

    @property
    def n_grains(self) -> int:
        """Number of crystalline grains.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> make_4dstem((4, 4), (16, 16), n_grains=3, return_truth=True)[1].n_grains
        3
        """
        return len(self.grain_angles)

    @property
    def disk_centres(self) -> np.ndarray:
        """Centre ``(y, x)`` of the bright-field disk in every frame: ``centre + shift``.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> make_4dstem((3, 4), (16, 16), return_truth=True)[1].disk_centres.shape
        (3, 4, 2)
        """
        return self.shift + np.asarray(self.centre)

    @property
    def vacuum(self) -> np.ndarray:
        """Boolean nav map of the vacuum frames.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> bool(make_4dstem((16, 16), (16, 16), return_truth=True)[1].vacuum[:, 0].all())
        True
        """
        return self.labels == LABEL_VACUUM

    @property
    def amorphous(self) -> np.ndarray:
        """Boolean nav map of the frames on the amorphous film.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> make_4dstem((4, 4), (16, 16), return_truth=True)[1].amorphous.dtype
        dtype('bool')
        """
        return self.labels == LABEL_AMORPHOUS

    @property
    def crystalline(self) -> np.ndarray:
        """Boolean nav map of the frames on any grain.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> bool(make_4dstem((16, 16), (16, 16), return_truth=True)[1].crystalline[:, -1].all())
        True
        """
        return self.labels >= FIRST_GRAIN_LABEL

    def grain(self, g: int) -> np.ndarray:
        """Boolean nav map of grain ``g`` (0-based).

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> truth = make_4dstem((16, 16), (16, 16), return_truth=True)[1]
        >>> in_grains = sum(truth.grain(g).sum() for g in range(truth.n_grains))
        >>> bool(in_grains == truth.crystalline.sum())
        True
        """
        self._check_grain(g)
        return self.labels == FIRST_GRAIN_LABEL + g

    def bragg_spots(self, g: int) -> np.ndarray:
        """Bragg disk centres ``(y, x)`` of grain ``g`` without shift, shape ``(K, 2)``.

        Includes disks that lie partly or wholly outside the frame.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.data import make_4dstem
        >>> truth = make_4dstem((4, 4), (64, 64), return_truth=True)[1]
        >>> d = np.hypot(*(truth.bragg_spots(0) - truth.centre).T)
        >>> bool(np.isclose(d.min(), truth.lattice_spacing))
        True
        """
        self._check_grain(g)
        return self._spots[g] + np.asarray(self.centre)

    def _check_grain(self, g: int) -> None:
        if not isinstance(g, (int, np.integer)) or not 0 <= g < self.n_grains:
            raise ValueError(f"grain must be an integer from 0 to {self.n_grains - 1}, got {g!r}")

    def detector_radii(self) -> dict[str, tuple[float, float]]:
        """Suggested virtual detectors ``{"bf": (0, r), "adf": (r_in, r_out)}``, in pixels.

        The bright-field disk stays inside ``"bf"`` whatever its shift; the
        annulus ``"adf"`` holds the first-order Bragg disks but neither the
        bright-field disk nor the amorphous ring, so it shows the grains.

        Examples
        --------
        >>> from udfwidgets.data import make_4dstem
        >>> make_4dstem((4, 4), (128, 128), return_truth=True)[1].detector_radii()["adf"]
        (22.4, 64.0)
        """
        max_shift = float(np.hypot(*self.shift.reshape(-1, 2).T).max(initial=0.0))
        bf = self.radius + max_shift + 1.0
        return {
            "bf": (0.0, round(bf, 2)),
            "adf": (
                round(self.ring_radius + 3 * self.ring_width, 2),
                round(min(self.sig_shape) / 2, 2),
            ),
        }


# --------------------------------------------------------------------------- validation
def _shape(value, name: str, min_dims: int, max_dims: int, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        value = (value,)
    try:
        dims = tuple(value)
        ok = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims)
    except TypeError:
        ok = False
    if not ok or not min_dims <= len(dims) <= max_dims or any(d < minimum for d in dims):
        count = f"{min_dims}" if min_dims == max_dims else f"{min_dims} to {max_dims}"
        raise ValueError(f"{name} must be a tuple of {count} integers >= {minimum}, got {value!r}")
    return tuple(int(d) for d in dims)


def _dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"dtype={dtype!r} is not a NumPy dtype; use e.g. 'uint16' or 'float32'"
        ) from None
    if dt.kind not in "uif":
        raise ValueError(
            f"dtype={dtype!r} is not an integer or float dtype; use e.g. 'uint16', "
            "'uint8', 'int32' or 'float32'"
        )
    return dt


@dataclass(frozen=True)
class _Spec:
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, int]
    dtype: np.dtype
    seed: int | None
    n_grains: int
    dose: float
    max_shift: float


def _spec(nav_shape, sig_shape, dtype, seed, n_grains, dose, max_shift) -> _Spec:
    nav = _shape(nav_shape, "nav_shape", 1, 3)
    sig = _shape(sig_shape, "sig_shape", 2, 2, minimum=8)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    if not isinstance(n_grains, (int, np.integer)) or not 1 <= n_grains <= 64:
        raise ValueError(f"n_grains must be an integer from 1 to 64, got {n_grains!r}")
    if (
        isinstance(dose, bool)
        or not isinstance(dose, (int, float, np.number))
        or not np.isfinite(dose)
        or dose <= 0
    ):
        raise ValueError(f"dose must be a positive number of counts per pixel, got {dose!r}")
    m = min(sig)
    if max_shift is None:
        max_shift = _MAX_SHIFT * m
    if (
        isinstance(max_shift, bool)
        or not isinstance(max_shift, (int, float, np.number))
        or not np.isfinite(max_shift)
        or not 0 <= max_shift <= 0.1 * m
    ):
        raise ValueError(
            f"max_shift must be between 0 and {0.1 * m:g} pixels (a tenth of the "
            f"smaller frame side), got {max_shift!r}"
        )
    return _Spec(
        nav,
        (sig[0], sig[1]),
        _dtype(dtype),
        None if seed is None else int(seed),
        int(n_grains),
        float(dose),
        float(max_shift),
    )


# --------------------------------------------------------------------------- the specimen
def _scan_coordinates(nav_shape: tuple[int, ...]) -> np.ndarray:
    """Specimen coordinates ``(u, v)`` in [0, 1] of every frame, shape ``(n, 2)``.

    2D scans cover the unit square; a 1D scan is a line across it (through
    vacuum, film and grains); a 3D scan is a series of 2D scans whose
    specimen drifts by a few percent per series.
    """
    if len(nav_shape) == 1:
        v = (np.arange(nav_shape[0]) + 0.5) / nav_shape[0]
        return np.stack([np.full_like(v, 0.5), v], axis=1)
    ny, nx = nav_shape[-2:]
    n0 = nav_shape[0] if len(nav_shape) == 3 else 1
    k, y, x = np.meshgrid(np.arange(n0), np.arange(ny), np.arange(nx), indexing="ij")
    drift = k / max(n0 - 1, 1)
    u = (y + 0.5) / ny + 0.06 * drift
    v = (x + 0.5) / nx + 0.04 * drift
    return np.stack([u.ravel(), v.ravel()], axis=1)


def _smooth(rng: np.random.Generator, n_modes: int = 3):
    """A smooth random function of (u, v) with values in [-1, 1]."""
    k = rng.uniform(0.5, 2.0, size=(n_modes, 2)) * rng.choice([-1, 1], size=(n_modes, 2))
    phase = rng.uniform(0, 2 * np.pi, n_modes)

    def f(uv: np.ndarray) -> np.ndarray:
        arg = 2 * np.pi * uv @ k.T + phase
        return np.cos(arg).mean(axis=1)

    return f


def _grain_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` Voronoi seeds in the crystalline part, kept apart (dart throwing)."""
    seeds: list[np.ndarray] = []
    min_dist = 0.9 / math.sqrt(n)
    while len(seeds) < n:
        for _ in range(200):
            p = np.array([rng.uniform(0.0, 1.0), rng.uniform(0.45, 1.0)])
            if all(np.hypot(*(p - s)) >= min_dist for s in seeds):
                break
        seeds.append(p)
        min_dist *= 0.97
    return np.array(seeds)


def _potential_field(rng: np.random.Generator):
    """Shift field: scan/descan ramp plus the gradient of a few Gaussian bumps."""
    n = 4
    centres = rng.uniform(0.1, 0.9, size=(n, 2))
    widths = rng.uniform(0.12, 0.25, n)
    amps = rng.uniform(0.5, 1.0, n) * rng.choice([-1, 1], n)
    ramp = rng.uniform(-0.5, 0.5, size=(2, 2))

    def field(uv: np.ndarray) -> np.ndarray:
        d = uv[:, None, :] - centres[None]  # (n_pos, n, 2)
        g = amps * np.exp(-(d**2).sum(-1) / (2 * widths**2))  # (n_pos, n)
        grad = -(g[..., None] * d / widths[:, None] ** 2).sum(1)  # -dV/du, -dV/dv
        return 0.15 * grad + (uv - 0.5) @ ramp.T

    return field


def _specimen(spec: _Spec, rng: np.random.Generator):
    """Labels, thickness and shift of every frame, plus the grain parameters."""
    uv = _scan_coordinates(spec.nav_shape)
    u, v = uv[:, 0], uv[:, 1]
    ph = rng.uniform(0, 2 * np.pi, 2)
    edge_vacuum = 0.15 + 0.04 * np.sin(2 * np.pi * 1.1 * u + ph[0])
    edge_film = 0.38 + 0.05 * np.sin(2 * np.pi * 0.8 * u + ph[1])
    seeds = _grain_seeds(rng, spec.n_grains)
    nearest = np.argmin(((uv[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
    labels = np.where(
        v < edge_vacuum,
        LABEL_VACUUM,
        np.where(v < edge_film, LABEL_AMORPHOUS, FIRST_GRAIN_LABEL + nearest),
    )

    bumpy = _smooth(rng)(uv)
    wedge = 1.0 - np.exp(-np.clip(v - edge_vacuum, 0, None) / 0.05)
    t0 = 0.7 + 0.12 * bumpy
    thickness = np.where(labels == LABEL_VACUUM, 0.0, 0.3 + (t0 - 0.3) * wedge)

    field = _potential_field(rng)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 33), np.linspace(0, 1, 33)), -1).reshape(-1, 2)
    scale = spec.max_shift / max(np.hypot(*field(grid).T).max(), 1e-12)
    shift = field(uv) * scale

    order = rng.permutation(spec.n_grains)
    angles = (order + rng.uniform(0.15, 0.85, spec.n_grains)) * (np.pi / 3) / spec.n_grains
    strengths = np.linspace(1.0, 0.2, spec.n_grains)[rng.permutation(spec.n_grains)]
    if spec.n_grains == 1:
        strengths = np.array([1.0])
    return labels, thickness, shift, angles, strengths


# --------------------------------------------------------------------------- templates
def _bragg_spots(angle: float, spacing: float, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Hexagonal lattice points ``(y, x)`` within ``reach`` of the origin, and their index."""
    n = int(reach / spacing * 1.2) + 2
    hh, kk = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    h, k = hh.ravel(), kk.ravel()
    a1 = spacing * np.array([np.sin(angle), np.cos(angle)])
    a2 = spacing * np.array([np.sin(angle + np.pi / 3), np.cos(angle + np.pi / 3)])
    pts = h[:, None] * a1 + k[:, None] * a2
    r = np.hypot(*pts.T)
    keep = (r > 0) & (r <= reach)
    return pts[keep], np.stack([h[keep], k[keep]], 1)


def _friedel_weights(rng: np.random.Generator, hk: np.ndarray) -> np.ndarray:
    """Random weights in [0.5, 1.5], equal for ``hk`` and ``-hk`` (centrosymmetric pattern)."""
    n = int(np.abs(hk).max()) if len(hk) else 0
    table = rng.uniform(0.5, 1.5, size=(2 * n + 1, 2 * n + 1))
    table = (table + table[::-1, ::-1]) / 2
    return table[hk[:, 0] + n, hk[:, 1] + n]


def _soft_disk(d: np.ndarray, radius: float) -> np.ndarray:
    return np.clip((radius - d) / _EDGE + 0.5, 0.0, 1.0)


def _radial_templates(
    shape: tuple[int, int], origin: np.ndarray, phases: int, funcs
) -> list[np.ndarray]:
    """Evaluate radial functions centred at every sub-pixel ``origin + phase``.

    Returns one ``(P, P, Hp, Wp)`` float32 array per function.
    """
    hp, wp = shape
    ph = np.arange(phases) / phases
    dy = (np.arange(hp)[None, :] - origin[0] - ph[:, None]) ** 2  # (P, Hp)
    dx = (np.arange(wp)[None, :] - origin[1] - ph[:, None]) ** 2  # (P, Wp)
    d = np.sqrt(dy[:, None, :, None] + dx[None, :, None, :])  # (P, P, Hp, Wp)
    return [f(d).astype(np.float32) for f in funcs]


def _add_disks(
    out: np.ndarray, origin: np.ndarray, spots: np.ndarray, amps: np.ndarray, radius: float
) -> None:
    """Add soft disks at ``origin + spots + phase`` into ``out`` (P, P, Hp, Wp), vectorised."""
    p, _, hp, wp = out.shape
    if not len(spots):
        return
    ph = np.arange(p) / p
    cy = origin[0] + spots[:, 0][None, :] + ph[:, None]  # (P, K)
    cx = origin[1] + spots[:, 1][None, :] + ph[:, None]  # (P, K)
    box = int(math.ceil(radius + _EDGE)) * 2 + 2
    oy = np.floor(cy).astype(np.int64) - box // 2 + 1
    ox = np.floor(cx).astype(np.int64) - box // 2 + 1
    ys = oy[..., None] + np.arange(box)  # (P, K, B)
    xs = ox[..., None] + np.arange(box)
    # every (phase y, phase x, spot, box y, box x)
    d = np.sqrt(
        (ys - cy[..., None])[:, None, :, :, None] ** 2
        + (xs - cx[..., None])[None, :, :, None, :] ** 2
    )
    val = _soft_disk(d, radius) * amps[None, None, :, None, None]
    yy = np.broadcast_to(ys[:, None, :, :, None], val.shape)
    xx = np.broadcast_to(xs[None, :, :, None, :], val.shape)
    inside = (yy >= 0) & (yy < hp) & (xx >= 0) & (xx < wp) & (val > 0)
    pi = np.broadcast_to(np.arange(p)[:, None, None, None, None], val.shape)
    pj = np.broadcast_to(np.arange(p)[None, :, None, None, None], val.shape)
    flat = ((pi * p + pj) * hp + yy) * wp + xx
    out += (
        np.bincount(flat[inside], weights=val[inside], minlength=out.size)
        .reshape(out.shape)
        .astype(np.float32)
    )


class _Templates:
    """Bright-field and scattering templates, and per-frame weights."""

    def __init__(
        self, spec: _Spec, rng: np.random.Generator, labels, thickness, shift, angles, strengths
    ):
        h, w = spec.sig_shape
        m = min(h, w)
        self.radius = _DISK_RADIUS * m
        self.ring_radius = _RING_RADIUS * m
        self.ring_width = _RING_WIDTH * m
        self.spacing = _LATTICE_SPACING * m
        self.centre = ((h - 1) / 2, (w - 1) / 2)

        # Dither shifts to 1/P pixel: the expected shift is the smooth field,
        # the rendered one (returned as truth) differs by less than 1/P.
        n_templates = FIRST_GRAIN_LABEL + spec.n_grains + 1
        mg = int(math.ceil(np.abs(shift).max(initial=0))) + 2
        hp, wp = h + 2 * mg, w + 2 * mg
        p = int(math.sqrt(_TEMPLATE_BYTES / (4 * n_templates * hp * wp)))
        p = max(1, min(_PHASES, p))
        q = np.floor(shift * p + rng.random(shift.shape)).astype(np.int64)
        self.shift = q / p
        self.int_shift = q // p
        self.phase = q % p
        self.margin = mg
        origin = np.array([mg + self.centre[0], mg + self.centre[1]])

        r, rr, rw, q0 = self.radius, self.ring_radius, self.ring_width, _HALO_WIDTH * m
        bf, ring, halo = _radial_templates(
            (hp, wp),
            origin,
            p,
            [
                lambda d: _soft_disk(d, r),
                lambda d: np.exp(-((d - rr) ** 2) / (2 * rw**2)),
                lambda d: np.exp(-0.5 * (d / q0) ** 2),
            ],
        )
        stack = np.zeros((n_templates,) + bf.shape, dtype=np.float32)
        stack[0] = bf  # index 0: bright field; 1 + label: scattering of that label
        stack[1 + LABEL_AMORPHOUS] = 0.10 * ring + 0.03 * halo
        # Only disks that stay whole inside the frame whatever the shift: a
        # disk cut by the frame edge would pull the centre of mass.
        reach = r + _EDGE + np.abs(shift).max(initial=0) + 1
        room = np.array([(h - 1) / 2, (w - 1) / 2]) - reach
        self.spots = []
        for g in range(spec.n_grains):
            spots, hk = _bragg_spots(angles[g], self.spacing, float(np.hypot(*room)))
            inside = np.all(np.abs(spots) <= room, axis=1)
            spots, hk = spots[inside], hk[inside]
            amps = (
                0.25
                * strengths[g]
                * _friedel_weights(rng, hk)
                * np.exp(-((np.hypot(*spots.T) / (1.6 * self.spacing)) ** 2))
            )
            tmpl = stack[1 + FIRST_GRAIN_LABEL + g]
            tmpl += 0.03 * halo
            _add_disks(tmpl, origin, spots, amps, r)
            self.spots.append(spots)
        self.windows = sliding_window_view(stack, (h, w), axis=(3, 4))

        attenuation = np.where(
            labels >= FIRST_GRAIN_LABEL,
            0.8 + 0.6 * strengths[np.maximum(labels - FIRST_GRAIN_LABEL, 0)],
            0.8,
        )
        self.bf_weight = (spec.dose * np.exp(-attenuation * thickness)).astype(np.float32)
        self.scatter_weight = (spec.dose * thickness).astype(np.float32)
        self.scatter_index = (1 + labels).astype(np.int64)

    def expected(self, start: int, stop: int) -> np.ndarray:
        """Mean counts of frames ``start:stop`` (flat nav), float32 ``(n, H, W)``."""
        sl = slice(start, stop)
        py, px = self.phase[sl, 0], self.phase[sl, 1]
        oy = self.margin - self.int_shift[sl, 0]
        ox = self.margin - self.int_shift[sl, 1]
        lam = self.windows[np.zeros_like(py), py, px, oy, ox]
        lam *= self.bf_weight[sl, None, None]
        scatter = self.windows[self.scatter_index[sl], py, px, oy, ox]
        scatter *= self.scatter_weight[sl, None, None]
        lam += scatter
        return lam


# --------------------------------------------------------------------------- noise
def _poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson samples of ``lam`` (float32, any shape) as uint32.

    Bright pixels (mean above ``_LOW_LAMBDA``) go to ``Generator.poisson``.
    The others, most of a frame, walk the cumulative distribution with one
    uniform number each: one vectorised step decides all pixels with zero
    counts, and only the few pixels still undecided take part in the next
    step. The first step runs in float32 (a relative error of about 1e-7 in
    the chance of a zero), the rest in float64.
    """
    flat = lam.reshape(-1)
    out = np.zeros(flat.size, dtype=np.uint32)
    idx_hi = np.flatnonzero(flat > _LOW_LAMBDA)
    if idx_hi.size:
        out[idx_hi] = rng.poisson(flat[idx_hi].astype(np.float64))
    u = rng.random(flat.size, dtype=np.float32)
    p0 = np.exp(-flat)
    idx = np.flatnonzero(u > p0)  # at least one count
    lo = flat[idx]
    keep = lo <= _LOW_LAMBDA
    idx, lo = idx[keep], lo[keep].astype(np.float64)
    u, p = u[idx].astype(np.float64), p0[idx].astype(np.float64)
    cdf = p.copy()
    # A few steps on all of them without compaction (cheap), ...
    k = np.ones(idx.size, dtype=np.uint32)
    for j in range(1, _STEPS + 1):
        p *= lo / j
        cdf += p
        k += u > cdf
    out[idx] = k
    # ... then the rare rest, dropping the decided pixels at every step.
    more = u > cdf
    idx, lo, u, p, cdf = idx[more], lo[more], u[more], p[more], cdf[more]
    j = _STEPS
    while idx.size and j < 400:  # j < 400: P(more) < 1e-300 for lam <= _LOW_LAMBDA
        j += 1
        p *= lo / j
        cdf += p
        more = u > cdf
        idx, lo, u, p, cdf = idx[more], lo[more], u[more], p[more], cdf[more]
        out[idx] += 1
    return out.reshape(lam.shape)


def _to_dtype(counts: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "ui":
        top = np.iinfo(dtype).max
        if top < np.iinfo(counts.dtype).max:
            np.minimum(counts, top, out=counts)
    return counts.astype(dtype, copy=False)


# --------------------------------------------------------------------------- generation
def _generate(spec: _Spec, out: np.ndarray, n_threads: int | None) -> SyntheticTruth:
    """Fill ``out`` (flat nav ``(n, H, W)``, any writable array) and return the truth."""
    layout_seq, noise_seq = np.random.SeedSequence(spec.seed).spawn(2)
    rng = np.random.default_rng(layout_seq)
    labels, thickness, shift, angles, strengths = _specimen(spec, rng)
    tm = _Templates(spec, rng, labels, thickness, shift, angles, strengths)

    n = math.prod(spec.nav_shape)
    frame_px = math.prod(spec.sig_shape)
    per_block = max(1, _BLOCK_PIXELS // frame_px)
    starts = list(range(0, n, per_block))
    seeds = noise_seq.spawn(len(starts))

    def work(i: int) -> None:
        a, b = starts[i], min(starts[i] + per_block, n)
        counts = _poisson(tm.expected(a, b), np.random.default_rng(seeds[i]))
        out[a:b] = _to_dtype(counts, spec.dtype)

    workers = n_threads or os.cpu_count() or 1
    if workers == 1 or len(starts) == 1:
        for i in range(len(starts)):
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
            for _ in pool.map(work, range(len(starts))):
                pass

    nav = spec.nav_shape
    return SyntheticTruth(
        nav_shape=nav,
        sig_shape=spec.sig_shape,
        labels=labels.reshape(nav),
        thickness=thickness.reshape(nav),
        shift=tm.shift.reshape(nav + (2,)),
        centre=tm.centre,
        radius=tm.radius,
        ring_radius=tm.ring_radius,
        ring_width=tm.ring_width,
        lattice_spacing=tm.spacing,
        grain_angles=angles,
        grain_strengths=strengths,
        dose=spec.dose,
        seed=spec.seed,
        _spots=tuple(tm.spots),
    )


def make_4dstem(
    nav_shape: Sequence[int] | int = (64, 64),
    sig_shape: Sequence[int] = (128, 128),
    dtype: str | np.dtype = "uint16",
    seed: int | None = 0,
    *,
    n_grains: int = 6,
    dose: float = 50.0,
    max_shift: float | None = None,
    path: str | os.PathLike | None = None,
    return_truth: bool = False,
    n_threads: int | None = None,
):
    """Simulate a 4D-STEM scan: vacuum, an amorphous film and crystalline grains.

    Parameters
    ----------
    nav_shape : tuple of int
        Scan shape, 1 to 3 dimensions: a line scan, a 2D scan, or a series of
        2D scans over a drifting specimen.
    sig_shape : tuple of int
        Frame shape ``(height, width)``, each at least 8. The geometry scales
        with the smaller side.
    dtype : numpy dtype
        Detector dtype: an integer dtype (counts are clipped at its maximum,
        like a saturating counter) or a float dtype.
    seed : int or None
        The same seed gives the same data, to the bit; None picks fresh entropy.
    n_grains : int
        Number of crystalline grains (1 to 64).
    dose : float
        Mean counts per pixel inside the bright-field disk in vacuum.
    max_shift : float, optional
        Largest displacement of the pattern across the scan, in pixels
        (default: 2 % of the smaller frame side, 2.56 px for 128 x 128).
    path : str or os.PathLike, optional
        Also write the data to this file: ``.npy`` with :func:`write_npy`,
        anything else as raw C-order bytes like :func:`write_raw`.
    return_truth : bool
        Also return the :class:`SyntheticTruth`.
    n_threads : int, optional
        Threads for the noise (all cores by default); the data do not depend on it.

    Returns
    -------
    data : numpy.ndarray
        Shape ``nav_shape + sig_shape``, the given dtype.
    truth : SyntheticTruth
        Only with ``return_truth=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.data import make_4dstem
    >>> data, truth = make_4dstem((16, 16), (32, 32), seed=1, return_truth=True)
    >>> data.shape, data.dtype
    ((16, 16, 32, 32), dtype('uint16'))
    >>> bool(np.array_equal(data, make_4dstem((16, 16), (32, 32), seed=1)))
    True
    >>> yy, xx = np.mgrid[:32, :32]
    >>> r_bf = truth.detector_radii()["bf"][1]
    >>> disk = np.hypot(yy - truth.centre[0], xx - truth.centre[1]) <= r_bf
    >>> bf = data[..., disk].sum(axis=-1)  # a virtual bright-field detector
    >>> bool(bf[truth.vacuum].min() > bf[truth.crystalline].max())
    True
    """
    spec = _spec(nav_shape, sig_shape, dtype, seed, n_grains, dose, max_shift)
    data = np.empty(spec.nav_shape + spec.sig_shape, dtype=spec.dtype)
    truth = _generate(spec, data.reshape((-1,) + spec.sig_shape), n_threads)
    if path is not None:
        if os.fspath(path).lower().endswith(".npy"):
            np.save(path, data)
        else:
            data.tofile(path)
    return (data, truth) if return_truth else data


def _write(path, spec: _Spec, n_threads, npy: bool) -> SyntheticTruth:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    shape = spec.nav_shape + spec.sig_shape
    if npy:
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=spec.dtype, shape=shape)
    else:
        arr = np.memmap(path, mode="w+", dtype=spec.dtype, shape=shape)
    try:
        truth = _generate(spec, arr.reshape((-1,) + spec.sig_shape), n_threads)
        arr.flush()
    finally:
        del arr
    return truth


def write_npy(
    path: str | os.PathLike,
    nav_shape: Sequence[int] | int = (64, 64),
    sig_shape: Sequence[int] = (128, 128),
    dtype: str | np.dtype = "uint16",
    seed: int | None = 0,
    *,
    n_threads: int | None = None,
    **kwargs,
) -> SyntheticTruth:
    """Write a synthetic scan (see :func:`make_4dstem`) to a ``.npy`` file.

    The file is filled through a memory map, block by block, so scans larger
    than the memory work. Other keyword arguments (``n_grains``, ``dose``,
    ``max_shift``) go to the simulation.

    Returns
    -------
    SyntheticTruth
        The ground truth of the written data.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from udfwidgets.data import write_npy
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.npy")
    >>> truth = write_npy(path, (4, 5), (16, 16))
    >>> np.load(path).shape
    (4, 5, 16, 16)
    """
    return _write(path, _file_spec(nav_shape, sig_shape, dtype, seed, kwargs), n_threads, npy=True)


def write_raw(
    path: str | os.PathLike,
    nav_shape: Sequence[int] | int = (64, 64),
    sig_shape: Sequence[int] = (128, 128),
    dtype: str | np.dtype = "uint16",
    seed: int | None = 0,
    *,
    n_threads: int | None = None,
    **kwargs,
) -> SyntheticTruth:
    """Write a synthetic scan (see :func:`make_4dstem`) as headerless C-order bytes.

    Open it with ``ctx.load("raw", path=..., nav_shape=..., sig_shape=..., dtype=...)``
    using the same shapes and dtype. The byte order is the machine's (little
    endian on x86 and ARM) unless ``dtype`` says otherwise (e.g. ``">u2"``).

    Returns
    -------
    SyntheticTruth
        The ground truth of the written data.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from udfwidgets.data import write_raw
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.raw")
    >>> truth = write_raw(path, (4, 5), (16, 16), dtype="uint16")
    >>> os.path.getsize(path) == 4 * 5 * 16 * 16 * 2
    True
    """
    return _write(path, _file_spec(nav_shape, sig_shape, dtype, seed, kwargs), n_threads, npy=False)


def _file_spec(nav_shape, sig_shape, dtype, seed, kwargs: dict) -> _Spec:
    """The simulation spec of write_npy / write_raw: their keyword arguments, checked."""
    spec = _spec(
        nav_shape,
        sig_shape,
        dtype,
        seed,
        kwargs.pop("n_grains", 6),
        kwargs.pop("dose", 50.0),
        kwargs.pop("max_shift", None),
    )
    _no_extra(kwargs)
    return spec


def _no_extra(kwargs: dict) -> None:
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise TypeError(
            f"unexpected keyword argument(s) {names}; the simulation accepts "
            "n_grains, dose and max_shift"
        )


# Writers of the detector formats (each in its reader's module), so the synthetic scan
# (make_4dstem) can be written in every format the package reads. Those of the HDF5 family
# (dectris, hdf5, zarr) are not used here, only re-exported per the formats interface (F401).
from .io.blo import write_blo  # noqa: E402
from .io.dectris import write_dectris  # noqa: E402,F401
from .io.dm import write_dm  # noqa: E402
from .io.empad import write_empad  # noqa: E402
from .io.hdf5 import write_hdf5  # noqa: E402,F401
from .io.k2is import write_k2is  # noqa: E402
from .io.mib import write_mib  # noqa: E402
from .io.mrc import write_mrc  # noqa: E402
from .io.ser import write_ser  # noqa: E402
from .io.tvips import write_tvips  # noqa: E402
from .io.zarr import write_zarr  # noqa: E402,F401
