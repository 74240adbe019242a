r"""Sensors of the pan-sharpening literature: their MTF gains at the Nyquist frequency.

The modulation transfer function (MTF) of an imaging sensor is modelled, as in the toolbox of
Vivone et al. ("A critical comparison among pansharpening algorithms", IEEE TGRS 2015; its 2021
benchmark update), by a Gaussian whose amplitude at the Nyquist frequency of the sampled band is
the gain ``G``. A gain is a number in (0, 1): ``G = 0.3`` means that detail at the finest
resolvable frequency survives with 30 % of its contrast.

Gains for QuickBird, IKONOS, GeoEye-1, WorldView-2 and WorldView-3 are the values published with
that toolbox (multispectral bands in the sensor's band order, and the panchromatic band).
For Pleiades, GaoFen-2 and Landsat no sensor-specific value is published in that toolbox: they
use the toolbox's generic gains (0.3 for each multispectral band, 0.15 for the panchromatic
band), which ``Sensor.source`` says; pass measured gains through :class:`Sensor` when you have
them.

Example::

    >>> s = get_sensor("WV3")
    >>> s.name, len(s.ms_gains), s.pan_gain, s.max_value
    ('WorldView-3', 8, 0.14, 2047)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GENERIC_MS_GAIN", "GENERIC_PAN_GAIN", "SENSORS", "Sensor", "custom_sensor", "get_sensor"]

#: The toolbox's gains for a sensor without published values.
GENERIC_MS_GAIN = 0.3
GENERIC_PAN_GAIN = 0.15

_TOOLBOX = "Vivone et al. toolbox (TGRS 2015 / MGRS 2021)"
_GENERIC = "generic toolbox gains (no sensor-specific value published there)"


@dataclass(frozen=True)
class Sensor:
    """One sensor: name, MS gains (one per band, sensor band order), PAN gain, bit depth.

    Args:
        name: the sensor's name.
        ms_gains: MTF amplitude at the MS Nyquist frequency, per multispectral band.
        pan_gain: MTF amplitude at the PAN Nyquist frequency.
        bits: radiometric resolution of the delivered digital numbers (11 for WorldView).
        bands: band names, same length as ``ms_gains``.
        source: where the gains come from.
    """

    name: str
    ms_gains: tuple[float, ...]
    pan_gain: float
    bits: int
    bands: tuple[str, ...]
    source: str = _TOOLBOX

    def __post_init__(self) -> None:
        for g in (*self.ms_gains, self.pan_gain):
            if not 0.0 < float(g) < 1.0:
                raise ValueError(f"Sensor {self.name}: MTF gains must lie in (0, 1), got {g}")
        if len(self.bands) != len(self.ms_gains):
            raise ValueError(f"Sensor {self.name}: {len(self.bands)} band names for "
                             f"{len(self.ms_gains)} gains")

    @property
    def max_value(self) -> int:
        """Largest digital number, ``2**bits - 1`` (the PanCollection scale: 2047 for 11 bits)."""
        return 2 ** self.bits - 1

    def gains_for(self, bands: int) -> tuple[float, ...]:
        """MS gains for an image with ``bands`` bands (must match the sensor's band count)."""
        if bands != len(self.ms_gains):
            raise ValueError(f"sensor {self.name!r} has {len(self.ms_gains)} MS bands, the "
                             f"image has {bands}")
        return self.ms_gains


_BGRN = ("blue", "green", "red", "nir")
_WV8 = ("coastal", "blue", "green", "yellow", "red", "red-edge", "nir1", "nir2")

#: Known sensors by canonical key.
SENSORS: dict[str, Sensor] = {
    "QB": Sensor("QuickBird", (0.34, 0.32, 0.30, 0.22), 0.15, 11, _BGRN),
    "IKONOS": Sensor("IKONOS", (0.26, 0.28, 0.29, 0.28), 0.17, 11, _BGRN),
    "GE1": Sensor("GeoEye-1", (0.23, 0.23, 0.23, 0.23), 0.16, 11, _BGRN),
    "WV2": Sensor("WorldView-2", (0.35,) * 7 + (0.27,), 0.11, 11, _WV8),
    "WV3": Sensor("WorldView-3", (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315),
                  0.14, 11, _WV8),
    "PLEIADES": Sensor("Pleiades", (GENERIC_MS_GAIN,) * 4, GENERIC_PAN_GAIN, 12, _BGRN,
                       source=_GENERIC),
    "GF2": Sensor("GaoFen-2", (GENERIC_MS_GAIN,) * 4, GENERIC_PAN_GAIN, 10, _BGRN,
                  source=_GENERIC),
    # Landsat 7 ETM+ as laid out in the shared data: R, G, B, NIR, SWIR1, SWIR2 (8-bit).
    "LANDSAT7": Sensor("Landsat 7 ETM+", (GENERIC_MS_GAIN,) * 6, GENERIC_PAN_GAIN, 8,
                       ("red", "green", "blue", "nir", "swir1", "swir2"), source=_GENERIC),
}

_ALIASES = {
    "QUICKBIRD": "QB", "GEOEYE1": "GE1", "GEOEYE-1": "GE1", "GEOEYE": "GE1",
    "WORLDVIEW2": "WV2", "WORLDVIEW-2": "WV2", "WORLDVIEW3": "WV3", "WORLDVIEW-3": "WV3",
    "PL": "PLEIADES", "GAOFEN2": "GF2", "GAOFEN-2": "GF2", "LANDSAT": "LANDSAT7",
    "LANDSAT-7": "LANDSAT7", "ETM+": "LANDSAT7",
}


def get_sensor(sensor: str | Sensor | None, bands: int | None = None) -> Sensor:
    """A :class:`Sensor` from a name (case-insensitive; ``"WV3"``, ``"WorldView-3"``...).

    ``None`` gives a generic sensor with ``bands`` bands (``bands`` required then).
    """
    if isinstance(sensor, Sensor):
        return sensor
    if sensor is None:
        if bands is None or bands < 1:
            raise ValueError("sensor: None needs the number of MS bands (bands >= 1)")
        return Sensor("generic", (GENERIC_MS_GAIN,) * bands, GENERIC_PAN_GAIN, 11,
                      tuple(f"b{k}" for k in range(bands)), source=_GENERIC)
    if not isinstance(sensor, str):
        raise TypeError(f"sensor: expected a name or a Sensor, got {type(sensor).__name__}")
    key = sensor.strip().upper().replace("_", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in SENSORS:
        raise ValueError(f"sensor: unknown {sensor!r}; expected one of {sorted(SENSORS)} "
                         "(or a hyperleaf.pansharpen.Sensor)")
    return SENSORS[key]


def custom_sensor(ms_gains: Sequence[float], pan_gain: float, bits: int = 11) -> Sensor:
    """A sensor with measured gains."""
    return Sensor("custom", tuple(float(g) for g in ms_gains), float(pan_gain), int(bits),
                  tuple(f"b{k}" for k in range(len(ms_gains))), source="user")
