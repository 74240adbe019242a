r"""One place where every fusion metric is registered.

A metric is a function of one :class:`~hyperleaf.metrics._images.FusionInputs` (the fused image
and its two sources, validated once, with the quantities several metrics share cached) and a
``convention`` (``"standard"`` or ``"mmif"``; ``"vifb"`` is computed on colour images by
:mod:`hyperleaf.metrics.vifb` for the 13 metrics VIFB defines), registered with its name, its direction and its
reference. Adding a metric is one module with one decorated function::

    from hyperleaf.metrics.registry import register

    @register("EN", higher_is_better=True, sources=False,
              reference="Roberts et al., J. Appl. Remote Sens. 2 (2008)")
    def _en(x, convention):
        ...

Names are looked up case-insensitively (:func:`resolve`); :func:`evaluate_inputs` runs a
selection in table order (the order of registration).

Example::

    >>> from hyperleaf.metrics import registry
    >>> registry.resolve(["qabf", "en"])
    ('EN', 'Qabf')
    >>> registry.get("ssim").higher_is_better
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["CONVENTIONS", "Metric", "add_alias", "all_metrics", "check_convention", "get", "register",
           "resolve"]

#: ``standard``: the published definitions; ``mmif``: what the MMIF-CDDFuse ``Evaluator``
#: computes; ``vifb``: what VIFB's MATLAB code computes, per RGB channel, for its 13 metrics
#: (:mod:`hyperleaf.metrics.vifb`; see docs/metrics.md).
CONVENTIONS = ("standard", "mmif", "vifb")


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    ``compute(inputs, convention) -> float``; ``sources`` is False for no-reference metrics (of
    the fused image alone); ``default`` says whether ``hyperleaf evaluate`` computes it when
    ``--metrics`` is not given.
    """

    name: str
    compute: Callable[[Any, str], float]
    higher_is_better: bool
    reference: str
    sources: bool = True
    default: bool = True
    unit: str = ""

    @property
    def direction(self) -> str:
        """``"↑"`` when higher is better, ``"↓"`` when lower is better."""
        return "↑" if self.higher_is_better else "↓"


_REGISTRY: dict[str, Metric] = {}
# Other spellings (``Q_CB`` for ``Qcb``) and groups (``FMI`` for its pixel and gradient
# variants), case-folded, to the canonical names they select.
_ALIASES: dict[str, tuple[str, ...]] = {}
# The metric modules register on import: hyperleaf/metrics/__init__.py imports them, and any
# import of this module imports its package first, so lookups are complete without this module
# importing the metric modules back (no import cycle).


def register(name: str, *, higher_is_better: bool, reference: str, sources: bool = True,
             default: bool = True, unit: str = "", aliases: tuple[str, ...] = ()
             ) -> Callable[[Callable], Callable]:
    """Decorator registering ``fn(inputs, convention) -> float`` as metric ``name``."""

    def deco(fn: Callable[[Any, str], float]) -> Callable[[Any, str], float]:
        key = name.casefold()
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"metric {name!r} is already registered")
        _REGISTRY[key] = Metric(name, fn, higher_is_better, reference, sources, default, unit)
        for alias in aliases:
            add_alias(alias, name)
        return fn

    return deco


def add_alias(alias: str, *names: str) -> None:
    """Let ``alias`` (case-insensitive) select the registered metrics ``names``."""
    key = alias.casefold()
    if key in _REGISTRY or key in _ALIASES:
        raise ValueError(f"metric name {alias!r} is already taken")
    _ALIASES[key] = names


def all_metrics() -> tuple[Metric, ...]:
    """Every registered metric, in table order."""
    return tuple(_REGISTRY.values())


def _expand(name: str) -> tuple[Metric, ...]:
    if isinstance(name, str):
        key = name.casefold()
        if key in _REGISTRY:
            return (_REGISTRY[key],)
        if key in _ALIASES:
            return tuple(_REGISTRY[n.casefold()] for n in _ALIASES[key])
    known = ", ".join(m.name for m in _REGISTRY.values())
    raise ValueError(f"metrics: unknown metric {name!r}; known: {known} (or all)")


def get(name: str) -> Metric:
    """The metric called ``name`` (case-insensitive, or a one-metric alias); ``ValueError``
    naming the known ones."""
    found = _expand(name)
    if len(found) != 1:
        raise ValueError(f"metrics: {name!r} names several metrics: "
                         f"{', '.join(m.name for m in found)}")
    return found[0]


def resolve(names: Iterable[str] | str | None = None) -> tuple[str, ...]:
    """Canonical names of a selection, in table order, without duplicates.

    ``None`` selects the default metrics; ``"all"`` every registered one; otherwise names are
    matched case-insensitively and an unknown name raises ``ValueError``.
    """
    if names is None:
        return tuple(m.name for m in _REGISTRY.values() if m.default)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if any(isinstance(n, str) and n.casefold() == "all" for n in names):
        return tuple(m.name for m in _REGISTRY.values())
    if not names:
        raise ValueError("metrics: the selection is empty")
    wanted = {m.name for n in names for m in _expand(n)}
    return tuple(m.name for m in _REGISTRY.values() if m.name in wanted)


def check_convention(convention: str) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS`, else ``ValueError``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {', '.join(CONVENTIONS)}, "
                         f"got {convention!r}")
    return convention
