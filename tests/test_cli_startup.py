"""The command line starts without the heavy libraries, ``hyperleaf`` alone prints help, every
``--help`` shows the defaults, and the lazy ``hyperleaf`` package still exposes every public
name. (Startup time itself is measured in ``benchmarks/bench_cli.py``, not asserted here.)"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "geoopt", "numpy", "matplotlib", "PIL", "scipy", "safetensors", "tqdm",
         "rich", "yaml")


def _python(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_parser_and_package_import_nothing_heavy():
    code = ("import sys, json, hyperleaf, hyperleaf.cli; p = hyperleaf.cli.build_parser(); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(_python(code)) == []


def test_public_names_resolve_lazily():
    import hyperleaf
    from hyperleaf import geometry, nn

    assert set(hyperleaf.__all__) == {*hyperleaf._WHERE, "__version__"}
    for name in hyperleaf.__all__:
        assert getattr(hyperleaf, name) is not None, name
        assert name in dir(hyperleaf)
    assert hyperleaf.expmap0 is geometry.expmap0 and hyperleaf.dist is geometry.dist
    assert hyperleaf.H2FRLoss is nn.H2FRLoss and hyperleaf.HDGFB is nn.HDGFB
    assert hyperleaf.compat.ship_from_official.__name__ == "ship_from_official"
    with pytest.raises(AttributeError, match="no_such_name"):
        hyperleaf.no_such_name  # noqa: B018
    from hyperleaf import ball  # from-import goes through the same lookup

    assert ball is geometry.ball


def test_bare_hyperleaf_prints_help():
    res = subprocess.run([sys.executable, "-m", "hyperleaf"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.startswith("usage: hyperleaf") and "fuse" in res.stdout


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from hyperleaf.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_help_shows_its_defaults():
    subs = _subparsers()
    assert sorted(subs) == sorted(["check", "train", "plot", "fuse", "evaluate", "leaderboard",
                                   "pansharpen", "ablate"])
    for name, sub in subs.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            if action.default is None or isinstance(action.default, bool):
                continue  # no value to show (or an on/off switch)
            if action.default is argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)  # the help as --help prints it
            assert "default" in text, (name, action.option_strings, text)
    fuse = " ".join(subs["fuse"].format_help().split())
    assert "(default: cpu)" in fuse and "(default: 0)" in fuse
    assert "(default: min(32, TILE/4))" in fuse


@pytest.mark.parametrize("task", ["fuse", "segment", "pansharpen"])
def test_train_help_shows_the_named_tasks_defaults(task, capsys):
    """`hyperleaf train --task T --help` shows T's defaults (Task.defaults under the engine's),
    each equal to the value a run of T that sets nothing gets; other tasks' flags, and the
    engine's that T does not read, are hidden."""
    from hyperleaf.cli import main
    from hyperleaf.cli import train as cli_train
    from hyperleaf.tasks import get_task
    from hyperleaf.train import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--task", task, "--help"])  # prepares the parser for `task`
    printed = " ".join(capsys.readouterr().out.split())
    sub = _subparsers()["train"]
    cli_train.prepare([])  # leave the module as a plain parse finds it
    extra = {"data": "scene.h5"} if task == "pansharpen" else {}  # pansharpen needs data
    cfg = TrainConfig.from_dict({"task": task, **extra})
    formatter, checked = sub._get_formatter(), 0
    for action in sub._actions:
        if not action.option_strings or action.dest in ("help", "config", "task"):
            continue
        if action.dest in {*get_task(task).foreign_keys, *get_task(task).unused_keys}:
            assert action.help == argparse.SUPPRESS, (task, action.dest)
            assert action.option_strings[0] + " " not in printed
            continue
        if action.type in (int, float):
            text = " ".join(formatter._expand_help(action).split())
            m = re.search(f"\\(default for --task {task}: ([^ )]+)", text)
            assert m, (task, action.dest, text)
            assert action.type(m.group(1)) == getattr(cfg, action.dest), (task, action.dest)
            checked += 1
    assert checked >= 8, checked


def test_check_choices_agree_with_hyperleaf_check():
    from hyperleaf import check
    from hyperleaf.cli import check as cli_check

    assert sorted(cli_check.DTYPE_NAMES) == sorted(check.DTYPES)
    assert tuple(cli_check.CURVATURES) == tuple(check.CURVATURES)
    assert tuple(cli_check.REGIMES) == tuple(check.REGIMES)


def test_readme_workflow_commands_parse():
    """Every ``hyperleaf`` command of the README's Workflow section is a valid command line
    (parsed, not run: the end-to-end run is tests/test_cli_fuse.py)."""
    from hyperleaf.cli import build_parser

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Workflow", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    commands = [ln.split("#", 1)[0].split()[1:] for ln in block.splitlines()
                if ln.strip().startswith(".venv/bin/hyperleaf")]
    assert [c[0] for c in commands] == ["train", "fuse", "evaluate", "plot"]
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert args.command == argv[0]
    for link in ("docs/ship.md", "docs/training.md"):
        assert f"]({link}" in section and (ROOT / link).is_file()
