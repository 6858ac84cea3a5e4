"""Calibration arithmetic against hand-computed values; ds.calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from udfwidgets import Calibration, masks
from udfwidgets.calibration import CalibrationError, electron_wavelength
from udfwidgets.io.memory import MemoryDataSet


# relativistic electron wavelengths in pm, as tabulated in TEM textbooks
# (Williams & Carter, Table 1.1): 100 kV 3.70, 200 kV 2.51, 300 kV 1.97
@pytest.mark.parametrize(
    "kev, pm", [(60, 4.8661), (80, 4.1757), (100, 3.7014), (200, 2.5079), (300, 1.9687)]
)
def test_wavelength(kev, pm):
    assert electron_wavelength(kev) * 1000 == pytest.approx(pm, abs=1e-4)


def test_wavelength_by_hand_at_200kv():
    # p = sqrt(2 m0 eV (1 + eV / 2 m0 c^2)), lambda = h / p, written out with rounded constants
    eV = 200e3 * 1.602177e-19
    m0c2 = 9.109384e-31 * 2.997925e8**2
    p = math.sqrt(2 * 9.109384e-31 * eV * (1 + eV / (2 * m0c2)))
    assert electron_wavelength(200) == pytest.approx(6.626070e-34 / p * 1e9, rel=1e-6)


def test_from_camera_angles_and_reciprocal():
    # 55 um pixels at 100 mm: 0.55 mrad per pixel
    cal = Calibration.from_camera(55, 100)
    assert cal.sig_step == (pytest.approx(0.55),) and cal.sig_unit == "mrad"
    assert Calibration.from_camera(
        55e-6, 0.1, pixel_unit="m", camera_length_unit="m", unit="rad"
    ).sig_step[0] == pytest.approx(5.5e-4)
    # 0.55e-3 rad / 2.5079e-3 nm = 0.21931 1/nm at 200 keV
    k = Calibration.from_camera(55, 100, beam_energy_kev=200, unit="1/nm")
    assert k.sig_step[0] == pytest.approx(0.21931, rel=1e-4)
    assert Calibration.from_camera(55, 100, beam_energy_kev=200, unit="1/A").sig_step[
        0
    ] == pytest.approx(0.021931, rel=1e-4)
    with pytest.raises(CalibrationError, match="beam_energy_kev"):
        Calibration.from_camera(55, 100, unit="1/nm")
    with pytest.raises(CalibrationError, match="positive"):
        Calibration.from_camera(-1, 100)
    with pytest.raises(CalibrationError, match="pixel_unit"):
        Calibration.from_camera(55, 100, pixel_unit="mrad")


def test_convert_sig():
    cal = Calibration(beam_energy_kev=300)
    # 10 mrad / 1.9687 pm = 5.0795 1/nm
    assert cal.convert_sig(10, "mrad", "1/nm") == pytest.approx(5.0795, rel=1e-4)
    assert cal.convert_sig(5.0795, "1/nm", "mrad") == pytest.approx(10, rel=1e-4)
    assert cal.convert_sig(1, "1/A", "1/nm") == pytest.approx(10)
    with pytest.raises(CalibrationError, match="beam energy"):
        Calibration().convert_sig(1, "mrad", "1/nm")
    with pytest.raises(CalibrationError, match="cannot convert"):
        cal.convert_sig(1, "mrad", "nm")


def test_axes_coordinates_and_extent():
    cal = Calibration(
        scan_step=(2.0, 0.5), scan_unit="nm", sig_step=0.25, sig_unit="mrad", beam_centre=(1.0, 2.0)
    )
    ny, nx = cal.nav_axes((3, 4))
    assert (ny.name, nx.name, ny.unit) == ("scan_y", "scan_x", "nm")
    np.testing.assert_allclose(ny.coords(), [0, 2, 4])
    np.testing.assert_allclose(nx.coords(), [0, 0.5, 1.0, 1.5])
    dy, dx = cal.sig_axes((3, 5))
    np.testing.assert_allclose(dy.coords(), [-0.25, 0, 0.25])
    np.testing.assert_allclose(dx.coords(), [-0.5, -0.25, 0, 0.25, 0.5])
    assert dx.to_index(0.5) == pytest.approx(4) and dx.to_physical(2) == pytest.approx(0)
    # pixel edges: x from -0.5 px to 4.5 px, y from 2.5 px (bottom) to -0.5 px (top)
    assert cal.extent("sig", (3, 5)) == pytest.approx((-0.625, 0.625, 0.375, -0.375))
    assert cal.extent("nav", (3, 4)) == pytest.approx((-0.25, 1.75, 5.0, -1.0))
    assert [a.name for a in cal.replace(scan_step=1).nav_axes((2, 2, 2))] == [
        "scan_z",
        "scan_y",
        "scan_x",
    ]
    assert cal.units("nav") == "nm" and cal.units("sig") == "mrad"
    with pytest.raises(CalibrationError, match="3 axes"):
        cal.nav_axes((2, 2, 2))
    with pytest.raises(CalibrationError, match="kind"):
        cal.axes("single", (2,))


def test_scan_origin():
    cal = Calibration(scan_step=2, scan_unit="nm", scan_origin=(1, 1))
    np.testing.assert_allclose(cal.nav_axes((3, 3))[0].coords(), [-2, 0, 2])


def test_to_pixels_and_masks_in_physical_units():
    cal = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(10, 12), beam_energy_kev=200)
    assert cal.to_pixels(2.5, "mrad") == pytest.approx(5)
    # 1 1/nm at 200 keV is 2.5079 mrad: 5.0158 px
    assert cal.to_pixels(1, "1/nm") == pytest.approx(5.0158, rel=1e-4)
    assert cal.point_to_pixels((1.0, -1.0), "mrad") == pytest.approx((12, 10))
    np.testing.assert_array_equal(
        cal.disk((21, 25), radius=2.5, unit="mrad"), masks.disk((21, 25), (10, 12), 5)
    )
    np.testing.assert_array_equal(
        cal.ring((21, 25), 1.0, 2.0, unit="mrad", centre=(0.5, 0)),
        masks.ring((21, 25), (11, 12), 2, 4),
    )
    with pytest.raises(CalibrationError, match="not square"):
        Calibration(sig_step=(0.5, 0.6), sig_unit="mrad").to_pixels(1, "mrad")
    with pytest.raises(CalibrationError, match="not calibrated"):
        Calibration().to_pixels(1, "mrad")


def test_from_metadata():
    md = {
        "scan_step": 1.5,
        "scan_unit": "nm",
        "pixel_size": 55,
        "pixel_unit": "um",
        "camera_length": 200,
        "beam_energy_kev": 300,
        "format": "mib",
    }
    cal = Calibration.from_metadata(md)
    assert cal.scan_step == (1.5,) and cal.scan_unit == "nm"
    assert cal.sig_step[0] == pytest.approx(0.275) and cal.sig_unit == "mrad"
    assert cal.beam_energy_kev == 300
    k = Calibration.from_metadata(dict(md, sig_unit="1/nm"))
    assert k.sig_step[0] == pytest.approx(0.275e-3 / 1.9687e-3, rel=1e-4)
    m = Calibration.from_metadata(dict(md, camera_length=0.2, camera_length_unit="m"))
    assert m.sig_step[0] == pytest.approx(0.275)
    direct = Calibration.from_metadata({"pixel_size": 0.02, "pixel_unit": "1/nm"})
    assert direct.sig_step == (0.02,) and direct.sig_unit == "1/nm"
    # unusable values leave that part in pixels
    assert (
        Calibration.from_metadata({"scan_step": -1, "pixel_size": 55, "pixel_unit": "um"}).to_dict()
        == Calibration().to_dict()
    )
    assert Calibration.from_metadata({"scan_step": 2, "scan_unit": "furlong"}).scan_unit == "px"


def test_dataset_calibration_property():
    ds = MemoryDataSet(np.zeros((2, 3, 4, 4)))
    assert ds.calibration == Calibration() and not ds.calibration.is_calibrated("nav")
    ds.metadata = {"scan_step": 3, "scan_unit": "A"}
    assert ds.calibration.scan_unit == "A"
    cal = Calibration(scan_step=1, scan_unit="nm")
    ds.calibration = cal
    assert ds.calibration is cal
    ds.calibration = None  # back to the file's
    assert ds.calibration.scan_unit == "A"
    with pytest.raises(TypeError, match="Calibration"):
        ds.calibration = {"scan_step": 1}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scan_unit": "mrad"}, "scan_unit"),
        ({"sig_unit": "um"}, "from_camera"),
        ({"sig_unit": "parsec"}, "unknown unit"),
        ({"scan_step": 0}, "positive"),
        ({"scan_step": "1"}, "positive number"),
        ({"beam_centre": (1, "a")}, "beam_centre"),
        ({"beam_centre": (1, float("nan"))}, "finite"),
        ({"beam_energy_kev": -3}, "beam_energy_kev"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(CalibrationError, match=match):
        Calibration(**kwargs)


def test_round_trip_dict_and_repr():
    cal = Calibration(
        scan_step=(1, 2),
        scan_unit="nm",
        sig_step=0.1,
        sig_unit="1/nm",
        beam_centre=(3, 4),
        beam_energy_kev=200,
    )
    assert Calibration(**cal.to_dict()) == cal
    assert "1/nm" in repr(cal) and "beam_centre" in repr(cal)
