"""Physical units of a dataset: scan step, detector pixel size, beam centre.

A :class:`Calibration` maps pixel indices to physical coordinates on two sets
of axes: the scan (navigation) axes, in a length unit (``"nm"``, ``"A"``,
``"um"``, ...), and the detector (signal) axes, in an angle (``"mrad"``) or a
reciprocal length (``"1/nm"``, ``"1/A"``). Every dataset has one
(``ds.calibration``, settable); without information it is the identity in
pixels (unit ``"px"``). Coordinate ``i`` of an axis is
``(i - origin) * step``: the scan origin is pixel 0 by default and the
detector origin is the beam centre when one is given.

The detector step can be given directly or computed from the physical pixel
size, the camera length and the beam energy (:meth:`Calibration.from_camera`):
``angle = pixel_size / camera_length`` (small angles) and
``k = angle / wavelength``, with the relativistic electron wavelength
(:func:`electron_wavelength`).

Examples
--------
>>> from udfwidgets import Calibration
>>> cal = Calibration.from_camera(pixel_size=55, camera_length=100, beam_energy_kev=200,
...                               unit="mrad", scan_step=0.5, scan_unit="nm")
>>> round(cal.sig_step[0], 6), cal.sig_unit
(0.55, 'mrad')
>>> round(cal.convert_sig(1.0, "mrad", "1/nm"), 4)  # 1 mrad at 200 keV
0.3987
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Calibration",
    "Axis",
    "electron_wavelength",
    "LENGTH_UNITS",
    "ANGLE_UNITS",
    "RECIPROCAL_UNITS",
    "CalibrationError",
]

#: length units in nm
LENGTH_UNITS = {
    "pm": 1e-3,
    "A": 0.1,
    "Å": 0.1,
    "nm": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "mm": 1e6,
    "m": 1e9,
}
#: angle units in rad
ANGLE_UNITS = {"urad": 1e-6, "µrad": 1e-6, "mrad": 1e-3, "rad": 1.0}
#: reciprocal length units in 1/nm
RECIPROCAL_UNITS = {
    "1/pm": 1e3,
    "1/A": 10.0,
    "1/Å": 10.0,
    "1/nm": 1.0,
    "1/um": 1e-3,
    "1/µm": 1e-3,
    "1/m": 1e-9,
}
PIXELS = "px"

_H = 6.62607015e-34  # Planck constant, J s
_M0 = 9.1093837015e-31  # electron rest mass, kg
_E = 1.602176634e-19  # elementary charge, C
_C = 299792458.0  # speed of light, m/s

NAV_NAMES = ("scan_z", "scan_y", "scan_x")
SIG_NAMES = ("det_y", "det_x")


class CalibrationError(ValueError):
    """A calibration value or unit that cannot be used.

    Examples
    --------
    >>> Calibration(scan_step=-1, scan_unit="nm")
    Traceback (most recent call last):
    ...
    udfwidgets.calibration.CalibrationError: scan_step must be a positive finite number, got -1
    """


def electron_wavelength(beam_energy_kev: float) -> float:
    """Relativistic electron wavelength in nm for an accelerating voltage in kV.

    ``lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))``.

    Examples
    --------
    >>> round(electron_wavelength(200) * 1000, 4)  # pm
    2.5079
    >>> round(electron_wavelength(300) * 1000, 4)
    1.9687
    """
    kev = _positive(beam_energy_kev, "beam_energy_kev")
    ev = kev * 1e3 * _E
    p = math.sqrt(2 * _M0 * ev * (1 + ev / (2 * _M0 * _C**2)))
    return _H / p * 1e9


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CalibrationError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise CalibrationError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _unit_family(unit: str) -> str:
    if unit == PIXELS:
        return "pixels"
    if unit in LENGTH_UNITS:
        return "length"
    if unit in ANGLE_UNITS:
        return "angle"
    if unit in RECIPROCAL_UNITS:
        return "reciprocal"
    raise CalibrationError(
        f"unknown unit {unit!r}: use 'px', a length ({', '.join(LENGTH_UNITS)}), an angle "
        f"({', '.join(ANGLE_UNITS)}) or a reciprocal length ({', '.join(RECIPROCAL_UNITS)})"
    )


def _steps(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = tuple(_positive(v, name) for v in value)
        if not vals:
            raise CalibrationError(f"{name} must be a number or a tuple of numbers, got {value!r}")
        return vals
    return (_positive(value, name),)


def _per_axis(values: tuple[float, ...], ndim: int, name: str) -> tuple[float, ...]:
    if len(values) == 1:
        return values * ndim
    if len(values) != ndim:
        raise CalibrationError(
            f"{name} has {len(values)} values, but there are {ndim} axes: "
            "give one value (same for all) or one per axis"
        )
    return values


@dataclass(frozen=True)
class Axis:
    """One calibrated axis: coordinate of pixel ``i`` is ``offset + i * scale``.

    Examples
    --------
    >>> Axis("scan_x", 3, 0.5, 0.0, "nm").coords()
    array([0. , 0.5, 1. ])
    """

    name: str
    size: int
    scale: float
    offset: float
    unit: str

    def coords(self) -> np.ndarray:
        """The physical coordinate of every pixel."""
        return self.offset + self.scale * np.arange(self.size, dtype=np.float64)

    def to_physical(self, index: Any) -> Any:
        """Pixel index (may be fractional) to physical coordinate."""
        return self.offset + self.scale * np.asarray(index, dtype=np.float64)

    def to_index(self, value: Any) -> Any:
        """Physical coordinate to (fractional) pixel index."""
        return (np.asarray(value, dtype=np.float64) - self.offset) / self.scale


class Calibration:
    """Scan step, detector pixel size and beam centre of a dataset.

    Parameters
    ----------
    scan_step : float or tuple of float
        Distance between neighbouring scan positions, one value or one per
        nav axis (in nav order, e.g. ``(y, x)``).
    scan_unit : str
        ``"px"`` (uncalibrated) or a length unit: ``"pm"``, ``"A"``, ``"nm"``,
        ``"um"``, ``"mm"``, ``"m"``.
    sig_step : float or tuple of float
        Size of one detector pixel in ``sig_unit`` (one value, or ``(y, x)``).
    sig_unit : str
        ``"px"``, an angle (``"urad"``, ``"mrad"``, ``"rad"``) or a reciprocal
        length (``"1/pm"``, ``"1/A"``, ``"1/nm"``, ``"1/um"``, ``"1/m"``).
    beam_centre : (float, float), optional
        Pixel position ``(y, x)`` of the unscattered beam: the origin of the
        detector axes. None: pixel 0.
    scan_origin : float or tuple of float
        Pixel index of the scan coordinate 0 (default 0).
    beam_energy_kev : float, optional
        Accelerating voltage in kV; lets angles be converted to reciprocal
        lengths and back.

    Examples
    --------
    >>> cal = Calibration(scan_step=2.0, scan_unit="nm", sig_step=0.1, sig_unit="1/nm",
    ...                   beam_centre=(2, 2))
    >>> [a.name for a in cal.nav_axes((3, 4))], cal.nav_axes((3, 4))[1].coords()
    (['scan_y', 'scan_x'], array([0., 2., 4., 6.]))
    >>> cal.sig_axes((5, 5))[0].coords()
    array([-0.2, -0.1,  0. ,  0.1,  0.2])
    >>> Calibration().is_calibrated("sig")
    False
    """

    def __init__(
        self,
        scan_step: Any = 1.0,
        scan_unit: str = PIXELS,
        sig_step: Any = 1.0,
        sig_unit: str = PIXELS,
        beam_centre: Sequence[float] | None = None,
        scan_origin: Any = 0.0,
        beam_energy_kev: float | None = None,
    ):
        self.scan_step = _steps(scan_step, "scan_step")
        self.sig_step = _steps(sig_step, "sig_step")
        if _unit_family(str(scan_unit)) not in ("pixels", "length"):
            raise CalibrationError(
                f"scan_unit must be 'px' or a length unit "
                f"({', '.join(LENGTH_UNITS)}), got {scan_unit!r}"
            )
        if _unit_family(str(sig_unit)) not in ("pixels", "angle", "reciprocal"):
            raise CalibrationError(
                f"sig_unit must be 'px', an angle ({', '.join(ANGLE_UNITS)}) "
                f"or a reciprocal length ({', '.join(RECIPROCAL_UNITS)}), got "
                f"{sig_unit!r}; for a physical detector pixel size use "
                "Calibration.from_camera(pixel_size=..., camera_length=..., "
                "beam_energy_kev=...)"
            )
        self.scan_unit = str(scan_unit)
        self.sig_unit = str(sig_unit)
        if beam_centre is not None:
            try:
                cy = tuple(float(v) for v in beam_centre)
            except (TypeError, ValueError):
                raise CalibrationError(
                    f"beam_centre must be a (y, x) pixel position, got {beam_centre!r}"
                ) from None
            if not all(math.isfinite(v) for v in cy):
                raise CalibrationError(f"beam_centre must be finite, got {beam_centre!r}")
            beam_centre = cy
        self.beam_centre = beam_centre
        origin = (
            scan_origin if isinstance(scan_origin, (list, tuple, np.ndarray)) else (scan_origin,)
        )
        try:
            self.scan_origin = tuple(float(v) for v in origin)
        except (TypeError, ValueError):
            raise CalibrationError(
                f"scan_origin must be a number or a tuple of numbers, got {scan_origin!r}"
            ) from None
        self.beam_energy_kev = (
            None if beam_energy_kev is None else _positive(beam_energy_kev, "beam_energy_kev")
        )

    # --- construction ------------------------------------------------------------
    @classmethod
    def from_camera(
        cls,
        pixel_size: float,
        camera_length: float,
        beam_energy_kev: float | None = None,
        unit: str = "mrad",
        pixel_unit: str = "um",
        camera_length_unit: str = "mm",
        **kwargs: Any,
    ) -> Calibration:
        """Detector step from the physical pixel size and the camera length.

        ``angle per pixel = pixel_size / camera_length`` (small-angle
        approximation, good to 0.1% below 50 mrad); in ``unit`` ``"mrad"`` (or
        another angle), or a reciprocal length (``"1/nm"``, needs
        ``beam_energy_kev``): ``angle / wavelength``. Other keyword arguments
        go to :class:`Calibration`.

        Examples
        --------
        >>> cal = Calibration.from_camera(55, 100, beam_energy_kev=200, unit="1/nm")
        >>> round(cal.sig_step[0], 4)  # 0.55 mrad / 2.5079 pm
        0.2193
        """
        if _unit_family(pixel_unit) != "length":
            raise CalibrationError(f"pixel_unit must be a length unit, got {pixel_unit!r}")
        if _unit_family(camera_length_unit) != "length":
            raise CalibrationError(
                f"camera_length_unit must be a length unit, got {camera_length_unit!r}"
            )
        p = _positive(pixel_size, "pixel_size") * LENGTH_UNITS[pixel_unit]
        L = _positive(camera_length, "camera_length") * LENGTH_UNITS[camera_length_unit]
        angle = p / L  # rad
        fam = _unit_family(unit)
        if fam == "angle":
            step = angle / ANGLE_UNITS[unit]
        elif fam == "reciprocal":
            if beam_energy_kev is None:
                raise CalibrationError(
                    f"unit={unit!r} needs beam_energy_kev= (the wavelength "
                    "turns angles into reciprocal lengths)"
                )
            step = angle / electron_wavelength(beam_energy_kev) / RECIPROCAL_UNITS[unit]
        else:
            raise CalibrationError(f"unit must be an angle or a reciprocal length, got {unit!r}")
        return cls(sig_step=step, sig_unit=unit, beam_energy_kev=beam_energy_kev, **kwargs)

    @classmethod
    def from_metadata(cls, metadata: dict) -> Calibration:
        """A calibration from a dataset's ``metadata`` dict (keys the readers fill in).

        Read keys: ``scan_step``, ``scan_unit``; ``pixel_size`` with
        ``pixel_unit`` (an angle or reciprocal unit: the detector step as is;
        a length unit: the physical pixel, turned into an angle with
        ``camera_length`` (in ``camera_length_unit``, default ``"mm"``) and,
        for ``sig_unit`` reciprocal, ``beam_energy_kev``); ``sig_unit``
        (target unit for a physical pixel, default ``"mrad"``);
        ``beam_centre``; ``beam_energy_kev``. Missing or unusable values leave
        that part in pixels.

        Examples
        --------
        >>> cal = Calibration.from_metadata({"scan_step": 1.5, "scan_unit": "nm",
        ...                                  "pixel_size": 55, "pixel_unit": "um",
        ...                                  "camera_length": 200, "beam_energy_kev": 300})
        >>> cal.scan_step, round(cal.sig_step[0], 4), cal.sig_unit
        ((1.5,), 0.275, 'mrad')
        >>> Calibration.from_metadata({}).sig_unit
        'px'
        """
        md = dict(metadata or {})
        kw: dict[str, Any] = {}
        energy = md.get("beam_energy_kev")
        try:
            if energy is not None:
                kw["beam_energy_kev"] = _positive(energy, "beam_energy_kev")
        except CalibrationError:
            energy = None
        if md.get("scan_step") is not None:
            unit = str(md.get("scan_unit", "nm"))
            try:
                _steps(md["scan_step"], "scan_step")
                if _unit_family(unit) == "length":
                    kw.update(scan_step=md["scan_step"], scan_unit=unit)
            except CalibrationError:
                pass
        if md.get("beam_centre") is not None:
            kw["beam_centre"] = md["beam_centre"]
        ps, pu = md.get("pixel_size"), md.get("pixel_unit")
        if ps is not None and pu is not None:
            try:
                fam = _unit_family(str(pu))
                if fam in ("angle", "reciprocal"):
                    kw.update(sig_step=ps, sig_unit=str(pu))
                elif fam == "length" and md.get("camera_length") is not None:
                    target = str(md.get("sig_unit", "mrad"))
                    if _unit_family(target) == "reciprocal" and energy is None:
                        target = "mrad"
                    cam = cls.from_camera(
                        ps,
                        md["camera_length"],
                        kw.get("beam_energy_kev"),
                        unit=target,
                        pixel_unit=str(pu),
                        camera_length_unit=str(md.get("camera_length_unit", "mm")),
                    )
                    kw.update(sig_step=cam.sig_step, sig_unit=cam.sig_unit)
            except CalibrationError:
                pass
        try:
            return cls(**kw)
        except CalibrationError:
            return cls()

    def replace(self, **changes: Any) -> Calibration:
        """A copy with some parameters changed.

        Examples
        --------
        >>> Calibration(scan_step=2, scan_unit="nm").replace(beam_centre=(3, 4)).beam_centre
        (3.0, 4.0)
        """
        d = self.to_dict()
        d.update(changes)
        return Calibration(**d)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-friendly dict (``Calibration(**d)`` rebuilds it).

        Examples
        --------
        >>> Calibration(scan_step=2, scan_unit="nm").to_dict()["scan_step"]
        [2.0]
        """
        return {
            "scan_step": list(self.scan_step),
            "scan_unit": self.scan_unit,
            "sig_step": list(self.sig_step),
            "sig_unit": self.sig_unit,
            "beam_centre": None if self.beam_centre is None else list(self.beam_centre),
            "scan_origin": list(self.scan_origin),
            "beam_energy_kev": self.beam_energy_kev,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (for file attributes)."""
        return json.dumps(self.to_dict())

    # --- axes ------------------------------------------------------------------------
    def is_calibrated(self, kind: str) -> bool:
        """Whether the ``"nav"`` or ``"sig"`` axes have a physical unit."""
        return self.units(kind) != PIXELS

    def units(self, kind: str) -> str:
        """The unit of the ``"nav"`` (scan) or ``"sig"`` (detector) axes."""
        if kind == "nav":
            return self.scan_unit
        if kind == "sig":
            return self.sig_unit
        raise CalibrationError(f"kind must be 'nav' or 'sig', got {kind!r}")

    def nav_axes(self, nav_shape: Sequence[int]) -> tuple[Axis, ...]:
        """The scan axes for ``nav_shape`` (names ``scan_y``, ``scan_x``; ``scan_z`` for 3D)."""
        nav = tuple(int(n) for n in nav_shape)
        steps = _per_axis(self.scan_step, len(nav), "scan_step")
        origin = _per_axis(self.scan_origin, len(nav), "scan_origin")
        names = (
            NAV_NAMES[len(NAV_NAMES) - len(nav) :]
            if len(nav) <= 3
            else tuple(f"scan_{i}" for i in range(len(nav)))
        )
        return tuple(
            Axis(n, size, s, -o * s, self.scan_unit)
            for n, size, s, o in zip(names, nav, steps, origin)
        )

    def sig_axes(self, sig_shape: Sequence[int]) -> tuple[Axis, ...]:
        """The detector axes for ``sig_shape`` (names ``det_y``, ``det_x``), origin at the beam centre."""
        sig = tuple(int(n) for n in sig_shape)
        steps = _per_axis(self.sig_step, len(sig), "sig_step")
        if self.beam_centre is None:
            centre = (0.0,) * len(sig)
        else:
            centre = _per_axis(self.beam_centre, len(sig), "beam_centre")
        names = (
            SIG_NAMES[len(SIG_NAMES) - len(sig) :]
            if len(sig) <= 2
            else tuple(f"det_{i}" for i in range(len(sig)))
        )
        return tuple(
            Axis(n, size, s, -c * s, self.sig_unit)
            for n, size, s, c in zip(names, sig, steps, centre)
        )

    def axes(self, kind: str, shape: Sequence[int]) -> tuple[Axis, ...]:
        """:meth:`nav_axes` or :meth:`sig_axes` by ``kind``."""
        if kind == "nav":
            return self.nav_axes(shape)
        if kind == "sig":
            return self.sig_axes(shape)
        raise CalibrationError(f"kind must be 'nav' or 'sig', got {kind!r}")

    def coords(self, kind: str, shape: Sequence[int]) -> list[np.ndarray]:
        """Physical coordinates of every pixel along each axis."""
        return [a.coords() for a in self.axes(kind, shape)]

    def extent(self, kind: str, shape: Sequence[int]) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` of an image of ``shape`` (2D) for
        ``matplotlib.imshow(..., origin="upper", extent=...)``: the outer pixel edges.

        Examples
        --------
        >>> Calibration(scan_step=2, scan_unit="nm").extent("nav", (2, 3))
        (-1.0, 5.0, 3.0, -1.0)
        """
        ay, ax = self.axes(kind, shape)[-2:]
        return (
            float(ax.to_physical(-0.5)),
            float(ax.to_physical(ax.size - 0.5)),
            float(ay.to_physical(ay.size - 0.5)),
            float(ay.to_physical(-0.5)),
        )

    # --- conversions --------------------------------------------------------------------
    def convert_sig(self, value: Any, from_unit: str, to_unit: str) -> Any:
        """Convert a detector-plane length between units (angles <-> reciprocal needs the energy).

        Examples
        --------
        >>> Calibration().convert_sig(2.0, "mrad", "rad")
        0.002
        """
        fam_a, fam_b = _unit_family(from_unit), _unit_family(to_unit)
        # numpy's stub types isscalar as a TypeGuard for every scalar type (complex, str, ...)
        v = np.asarray(value, dtype=np.float64) if not np.isscalar(value) else float(value)  # type: ignore[arg-type]
        if fam_a == fam_b == "angle":
            return v * ANGLE_UNITS[from_unit] / ANGLE_UNITS[to_unit]
        if fam_a == fam_b == "reciprocal":
            return v * RECIPROCAL_UNITS[from_unit] / RECIPROCAL_UNITS[to_unit]
        if {fam_a, fam_b} == {"angle", "reciprocal"}:
            if self.beam_energy_kev is None:
                raise CalibrationError(
                    f"converting {from_unit!r} to {to_unit!r} needs the beam "
                    "energy: set beam_energy_kev on the calibration"
                )
            lam = electron_wavelength(self.beam_energy_kev)
            if fam_a == "angle":
                return v * ANGLE_UNITS[from_unit] / lam / RECIPROCAL_UNITS[to_unit]
            return v * RECIPROCAL_UNITS[from_unit] * lam / ANGLE_UNITS[to_unit]
        if fam_a == fam_b == "pixels":
            return v
        raise CalibrationError(f"cannot convert {from_unit!r} to {to_unit!r}")

    def convert_nav(self, value: Any, from_unit: str, to_unit: str) -> Any:
        """Convert a scan length between length units.

        Examples
        --------
        >>> Calibration().convert_nav(1.5, "nm", "A")
        15.0
        """
        if _unit_family(from_unit) != "length" or _unit_family(to_unit) != "length":
            raise CalibrationError(
                f"cannot convert {from_unit!r} to {to_unit!r}: scan lengths "
                f"are in {', '.join(LENGTH_UNITS)}"
            )
        return value * LENGTH_UNITS[from_unit] / LENGTH_UNITS[to_unit]

    def to_pixels(self, value: float, unit: str | None = None, kind: str = "sig") -> float:
        """A length (a radius, a width) in ``unit`` as a number of pixels.

        ``unit=None`` or ``"px"``: ``value`` is already pixels. The axes must
        have one step (square pixels) for this.

        Examples
        --------
        >>> cal = Calibration(sig_step=0.5, sig_unit="mrad")
        >>> cal.to_pixels(2.5, "mrad"), cal.to_pixels(0.0025, "rad"), cal.to_pixels(3)
        (5.0, 5.0, 3.0)
        """
        v = float(value)
        if unit is None or unit == PIXELS:
            return v
        steps = self.sig_step if kind == "sig" else self.scan_step
        own = self.units(kind)
        if own == PIXELS:
            raise CalibrationError(
                f"the {kind} axes are not calibrated (unit 'px'): cannot "
                f"turn {value} {unit} into pixels; set ds.calibration first"
            )
        if len(set(steps)) > 1:
            raise CalibrationError(
                f"the {kind} pixels are not square (steps {steps}): give the "
                "length in pixels instead"
            )
        conv = self.convert_sig if kind == "sig" else self.convert_nav
        return float(conv(v, unit, own)) / steps[0]

    def point_to_pixels(
        self, point: Sequence[float], unit: str | None = None, kind: str = "sig"
    ) -> tuple[float, ...]:
        """A physical position ``(y, x)`` (relative to the axes' origin) as pixel indices.

        Examples
        --------
        >>> Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(8, 8)).point_to_pixels(
        ...     (1.0, -2.0), "mrad")
        (10.0, 4.0)
        """
        vals = [float(v) for v in point]
        axes = self.axes(kind, (1,) * len(vals))
        out = []
        for v, a in zip(vals, axes):
            if unit is not None and unit != PIXELS:
                if a.unit == PIXELS:
                    raise CalibrationError(
                        f"the {kind} axes are not calibrated: set ds.calibration first"
                    )
                conv = self.convert_sig if kind == "sig" else self.convert_nav
                out.append(float(a.to_index(float(conv(v, unit, a.unit)))))
            else:
                out.append(v)
        return tuple(out)

    def disk(
        self,
        sig_shape: Sequence[int],
        radius: float,
        unit: str | None = None,
        centre: Sequence[float] | None = None,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """:func:`udfwidgets.masks.disk` with the radius (and centre) in physical units.

        ``centre`` is a physical position relative to the beam centre (default
        the beam centre itself; the frame's middle when no beam centre is set).

        Examples
        --------
        >>> cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(4, 4))
        >>> int(cal.disk((9, 9), radius=1.0, unit="mrad", dtype=bool).sum())  # 2 pixels
        13
        """
        from .masks import disk

        return disk(
            sig_shape,
            self._centre_px(sig_shape, centre, unit),
            self.to_pixels(radius, unit),
            dtype=dtype,
        )

    def ring(
        self,
        sig_shape: Sequence[int],
        inner: float,
        outer: float,
        unit: str | None = None,
        centre: Sequence[float] | None = None,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """:func:`udfwidgets.masks.ring` with radii (and centre) in physical units.

        Examples
        --------
        >>> cal = Calibration(sig_step=1.0, sig_unit="mrad", beam_centre=(4, 4))
        >>> int(cal.ring((9, 9), 1.0, 2.0, unit="mrad", dtype=bool).sum())
        8
        """
        from .masks import ring

        return ring(
            sig_shape,
            self._centre_px(sig_shape, centre, unit),
            self.to_pixels(inner, unit),
            self.to_pixels(outer, unit),
            dtype=dtype,
        )

    def _centre_px(self, sig_shape, centre, unit) -> tuple[float, float]:
        if centre is None:
            if self.beam_centre is not None:
                return tuple(self.beam_centre)  # type: ignore[return-value]
            return tuple((s - 1) / 2 for s in sig_shape)
        return self.point_to_pixels(centre, unit)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Calibration) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        d = self.to_dict()
        parts = [
            f"scan_step={tuple(d['scan_step'])} {self.scan_unit}",
            f"sig_step={tuple(d['sig_step'])} {self.sig_unit}",
        ]
        if self.beam_centre is not None:
            parts.append(f"beam_centre={self.beam_centre}")
        if self.beam_energy_kev is not None:
            parts.append(f"beam_energy_kev={self.beam_energy_kev:g}")
        return f"<Calibration {', '.join(parts)}>"
