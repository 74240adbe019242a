"""Shared test configuration.

* ``--shared DIR`` (or the environment variable ``HYPERLEAF_SHARED``) points at the project's
  ``../shared`` folder (seed texts, SHIP checkpoint, golden outputs, TNO pairs). Tests marked
  ``shared`` use it and are skipped, with the reason shown, when it is not given. ``.ci/run``
  gives it.
* Hypothesis profiles: ``quick`` (default, for ``make test``) and ``thorough``
  (``--hypothesis-profile=thorough``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# quick (the default, and CI's): the same 40 examples of each test on every run, so that a
# green run stays green; thorough: 1000 fresh random examples per test, to explore.
settings.register_profile(
    "quick", max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

SHARED_ENV = "HYPERLEAF_SHARED"


def pytest_addoption(parser):
    parser.addoption(
        "--shared",
        metavar="DIR",
        default=None,
        help=f"the project's shared/ folder; enables tests marked 'shared' (env: {SHARED_ENV})",
    )


def pytest_configure(config):
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def _shared_dir(config) -> Path | None:
    value = config.getoption("--shared") or os.environ.get(SHARED_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise pytest.UsageError(f"--shared/{SHARED_ENV}: {path} is not a directory")
    return path


def pytest_collection_modifyitems(config, items):
    if _shared_dir(config) is not None:
        return
    skip = pytest.mark.skip(
        reason=f"needs ../shared: pass --shared DIR or set {SHARED_ENV} (.ci/run does)"
    )
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    d = _shared_dir(config)
    return f"hyperleaf shared dir: {d if d else 'not given (tests marked shared are skipped)'}"


@pytest.fixture(scope="session")
def shared_dir(request) -> Path:
    d = _shared_dir(request.config)
    if d is None:
        pytest.skip(f"needs ../shared: pass --shared DIR or set {SHARED_ENV}")
    return d


@pytest.fixture(scope="session")
def seed_namespace(shared_dir) -> dict:
    """The LEAF seed's own code, read from ``shared/seeds`` and executed (never copied into the
    repository): ``HyperbolicUtils``, ``top1_loss``, ``listwise_ranking_loss``,
    ``RankingBasedGeometryLoss``, ``HyperbolicAttentionFusion``."""
    from tests.seedcode import load_seed_namespace

    return load_seed_namespace(shared_dir)
