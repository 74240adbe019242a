"""The architecture's promises: old import paths, renamed keywords, the import contract and the
docs' tables agree with the code."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path, name", [
    ("hyperleaf", "H2FRLoss"), ("hyperleaf", "HDGFB"), ("hyperleaf.train", "load_run"),
    ("hyperleaf.metrics", "evaluate"), ("hyperleaf.models", "SHIP"),
    ("hyperleaf.models", "LeafHead"), ("hyperleaf.models.leafseg", "LeafHead"),
    ("hyperleaf.train.objective", "FusionObjective"), ("hyperleaf.train.objective", "ordering"),
    ("hyperleaf.train.segment", "SegmentObjective"), ("hyperleaf.train.leafplot", "plot_leaf"),
    ("hyperleaf.train.losses", "FusionLoss"), ("hyperleaf.train.losses", "sobel_magnitude"),
    ("hyperleaf.train.distributed", "gather_levels"), ("hyperleaf.compat", "ship_from_official"),
    ("hyperleaf.compat", "hdgfb_from_reference"),
])
def test_old_public_paths(path, name):
    assert getattr(importlib.import_module(path), name) is not None


def test_moved_objects_are_the_same():
    from hyperleaf.filters import sobel_magnitude
    from hyperleaf.losses import FusionLoss
    from hyperleaf.nn.heads import LeafHead
    from hyperleaf.tasks.fuse import FusionObjective
    from hyperleaf.train import losses, objective

    assert objective.LeafHead is LeafHead and objective.FusionObjective is FusionObjective
    assert losses.FusionLoss is FusionLoss and losses.sobel_magnitude is sobel_magnitude
    assert importlib.import_module("hyperleaf.models").LeafHead is LeafHead


def test_verify_shims_are_the_modules():
    from hyperleaf import check, oracle
    from hyperleaf.verify import check as vcheck
    from hyperleaf.verify import oracle as voracle

    assert check is vcheck and oracle is voracle


def test_learn_c_is_the_one_name():
    from hyperleaf import HDGFB, H2FRLoss, ball

    assert ball(0.5, learn_c=True).isp_c.requires_grad
    assert H2FRLoss(mode="geodesic", learn_c=True).ball.isp_c.requires_grad
    assert HDGFB(4, hidden=4, mode="geodesic", learn_c=True).ball.isp_c.requires_grad
    with pytest.warns(DeprecationWarning, match="learnable= is deprecated, use learn_c="):
        assert ball(0.5, learnable=True).isp_c.requires_grad
    with pytest.warns(DeprecationWarning, match="learnable_c= is deprecated"):
        assert H2FRLoss(mode="geodesic", learnable_c=True).ball.isp_c.requires_grad
    with pytest.warns(DeprecationWarning, match="learnable_c= is deprecated"):
        assert HDGFB(4, hidden=4, mode="geodesic", learnable_c=True).ball.isp_c.requires_grad
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="both learn_c"):
        ball(0.5, learn_c=True, learnable=False)


def test_docs_list_every_task_and_layer():
    from hyperleaf.models.registry import list_models
    from hyperleaf.tasks import list_tasks

    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in list_tasks() + list_models():
        assert f"`{name}`" in doc, f"docs/architecture.md does not mention {name!r}"
    contract = (ROOT / ".importlinter").read_text(encoding="utf-8")
    layers = re.search(r"^layers =\n((?:    .*\n)+)", contract, re.M).group(1)
    for mod in re.findall(r"hyperleaf\.\w+", layers):
        assert f"`{mod}`" in doc, f"layer {mod} of .importlinter missing from the docs' table"


@pytest.mark.skipif(shutil.which("lint-imports") is None
                    and not Path(sys.executable).with_name("lint-imports").exists(),
                    reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    res = subprocess.run([exe, "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_fuse_arrays_lives_in_the_library_with_keyword_modalities():
    """``fuse_arrays`` moved out of the CLI; its modalities are keyword-only (no order to swap),
    and the old positional ``cli.fuse.fuse_arrays(net, ir, vis)`` gives the same image."""
    import numpy as np

    from hyperleaf.cli.fuse import fuse_arrays as old
    from hyperleaf.models import fuse_arrays

    rng = np.random.default_rng(3)
    ir, vis = rng.random((5, 6)), rng.random((5, 6))

    def net(v, i):  # order-sensitive stand-in: (vis - ir + 1) / 2
        return (v - i + 1) / 2

    out = fuse_arrays(net, vis=vis, ir=ir)
    np.testing.assert_allclose(out, (vis - ir + 1) / 2, atol=1e-6)
    np.testing.assert_array_equal(old(net, ir, vis), out)
    with pytest.raises(TypeError):
        fuse_arrays(net, ir, vis)  # positional modalities are refused


#: Calls whose text reaches the user besides exceptions: notes and warnings.
_MESSAGE_CALLS = {"print", "warn", "report", "say"}


def _raised_strings(tree):
    """``(line, text)`` of every string literal (f-string parts included) inside the arguments
    of a ``raise X(...)`` or of a message call (:data:`_MESSAGE_CALLS`)."""
    import ast

    for node in ast.walk(tree):
        call = None
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
        elif isinstance(node, ast.Call) and getattr(node.func, "id",
                                                    getattr(node.func, "attr", None)) in _MESSAGE_CALLS:
            call = node
        if call is not None:
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                for sub in ast.walk(arg):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        yield node.lineno, sub.value


def test_library_errors_name_no_cli_flag():
    """Library code names the argument or configuration key (``crop: ...``) in its errors and
    notes; only ``hyperleaf/cli`` turns it into a flag (``hyperleaf.cli.flags.flag_message``)."""
    import ast

    flag = re.compile(r"(?<![\w-])--[a-z]")
    found = []
    for path in sorted((ROOT / "hyperleaf").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("hyperleaf/cli/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{rel}:{line}: {text!r}" for line, text in _raised_strings(tree)
                  if flag.search(text)]
    assert not found, "library errors naming CLI flags:\n" + "\n".join(found)


def test_the_check_finds_a_flag_in_a_raise():
    import ast

    tree = ast.parse('def f(n):\n    raise ValueError(f"x {n}; lower --crop")\n'
                     '    print("hyperleaf train: --resume: x", file=sys.stderr)\n')
    assert [t for _, t in _raised_strings(tree) if "--" in t] == [
        "; lower --crop", "hyperleaf train: --resume: x"]


def test_cli_names_flags_where_the_library_names_keys(tmp_path, capsys):
    from hyperleaf.cli import main
    from hyperleaf.cli.flags import KEY_FLAGS, flag_message
    from hyperleaf.io import ImageError, find_pairs

    with pytest.raises(ImageError) as info:
        find_pairs(ir=tmp_path / "none", vis=tmp_path)
    assert str(info.value).startswith("ir: ") and flag_message(info.value).startswith("--ir: ")
    # the map's flags are real flags of the commands
    assert main(["train", "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: --resume: needs --out" in err
    assert all(f.startswith("--") for f in KEY_FLAGS.values())


def test_resume_notes_name_the_key_in_the_library_and_the_flag_on_the_command_line(
        tmp_path, capsys):
    import yaml

    from hyperleaf.cli import main
    from hyperleaf.train import train
    from tests.test_train import TINY, tiny

    notes = []
    train(tiny(tmp_path / "lib", steps=2, save_every=2), resume=True, progress=False,
          report=notes.append)
    assert notes == [f"resume: no run in {tmp_path / 'lib'} yet; starting it"]
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump({**TINY, "steps": 2, "save_every": 2}))
    assert main(["train", "--config", str(f), "--resume", "--no-progress",
                 "--out", str(tmp_path / "cli")]) == 0
    err = capsys.readouterr().err
    assert f"hyperleaf train: --resume: no run in {tmp_path / 'cli'} yet; starting it" in err


def test_the_key_to_flag_map_is_read_from_the_parsers_and_commands_agree():
    """No key -> flag table is written by hand (issue 21): hyperleaf.cli.flags.key_flags reads
    the parsers, so every command must spell a key the same way."""
    import argparse

    from hyperleaf.cli import build_parser
    from hyperleaf.cli.flags import ARGUMENT_ALIASES, KEY_FLAGS, key_flags

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    spelled: dict[str, set[str]] = {}
    for parser in sub.choices.values():
        for action in parser._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and action.dest != "help":
                spelled.setdefault(action.dest, set()).add(longs[0])
    assert {k: v for k, v in spelled.items() if len(v) > 1} == {}
    flags = key_flags()
    assert {k: flags[k] for k in spelled} == {k: next(iter(v)) for k, v in spelled.items()}
    assert all(flags[a] == flags[d] for a, d in ARGUMENT_ALIASES.items())
    assert dict(KEY_FLAGS) == flags and KEY_FLAGS["n_feat"] == "--n-feat"


def test_no_layer_imports_the_top_level_package():
    """`import hyperleaf` inside a layer reaches every layer through the lazy top-level names,
    unseen by import-linter (issue 21): modules import the module they use."""
    import ast

    root = Path(__file__).resolve().parents[1] / "hyperleaf"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py" or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "hyperleaf" for a in node.names):
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert offenders == []


#: Modules that import by name (importlib), each within its own package and why: lazy public
#: names of a package (hyperleaf, hyperleaf.compat, hyperleaf.train), the sub-commands of the command line, and
#: the registry's built-in entries (a task / model module of the registering layer itself), and
#: the pan-sharpening readers' optional third-party packages (h5py, tifffile: no hyperleaf module).
IMPORTLIB_ALLOWED = {"hyperleaf/__init__.py", "hyperleaf/compat/__init__.py", "hyperleaf/train/__init__.py",
                     "hyperleaf/cli/__init__.py", "hyperleaf/registry.py",
                     "hyperleaf/pansharpen/data.py"}


def _module_graph() -> dict[str, set[str]]:
    """hyperleaf module -> the hyperleaf modules it imports at module level."""
    import ast

    root = Path(__file__).resolve().parents[1]
    mods = {}
    for p in (root / "hyperleaf").rglob("*.py"):
        parts = list(p.relative_to(root).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {}
    for m, p in mods.items():
        edges = set()
        for node in ast.parse(p.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    edges.add(sub if sub in mods else node.module)
        graph[m] = {e for e in edges if e in mods and e != m}
    return graph


def test_no_import_cycles_and_no_importlib_around_the_contracts():
    """Issue 21: modules import each other one way (no cycle, module-level imports), and no
    module reaches another by name (importlib) except the listed lazy loaders."""
    import ast

    graph = _module_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(v, path):
        state[v] = 1
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                cycles.append(path[path.index(w):] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])
    assert cycles == []
    root = Path(__file__).resolve().parents[1]
    users = set()
    for p in (root / "hyperleaf").rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if "importlib" in names or "runpy" in names:
            users.add(str(p.relative_to(root)))
    assert users <= IMPORTLIB_ALLOWED, users - IMPORTLIB_ALLOWED
    # a cycle is found when there is one
    graph_with_cycle = {"a": {"b"}, "b": {"a"}}
    state.clear()
    cycles.clear()
    graph.clear()
    graph.update(graph_with_cycle)
    visit("a", ["a"])
    assert cycles == [["a", "b", "a"]]


#: The engine's old-path modules (issue 21: train/ is the engine only) -> their former names
#: and where each now lives (module path, attribute).
_TRAIN_OLD_PATHS = [
    ("objective", "FusionObjective", "hyperleaf.tasks.fuse"),
    ("objective", "LeafHead", "hyperleaf.nn.heads"),
    ("objective", "Levels", "hyperleaf.nn.heads"),
    ("objective", "ordering", "hyperleaf.nn.heads"),
    ("segment", "SegmentObjective", "hyperleaf.tasks.segment"),
    ("segment", "build_segment_objective", "hyperleaf.tasks.segment"),
    ("leafplot", "plot_leaf", "hyperleaf.tasks.leafplot"),
    ("leafplot", "plot_run_objective", "hyperleaf.tasks.leafplot"),
    ("leafplot", "disk_coordinates", "hyperleaf.tasks.leafplot"),
    ("leafplot", "collect_points", "hyperleaf.tasks.leafplot"),
    ("losses", "FusionLoss", "hyperleaf.losses.fusion"),
    ("losses", "sobel_magnitude", "hyperleaf.filters"),
    ("losses", "confusion_matrix", "hyperleaf.metrics.segmentation"),
    ("losses", "miou", "hyperleaf.metrics.segmentation"),
    ("diagnostics", "STREAMS", "hyperleaf.tasks.diagnostics"),
    ("diagnostics", "geometry_diagnostics", "hyperleaf.tasks.diagnostics"),
    ("diagnostics", "saturation_mask", "hyperleaf.tasks.diagnostics"),
    *(("distributed", n, "hyperleaf.distributed") for n in (
        "world_size", "rank", "is_distributed", "init_from_env", "gather_batch",
        "gather_levels", "all_reduce_mean", "any_true", "barrier")),
    ("evaluate", "val_batches", "hyperleaf.tasks.common"),
    ("pansharpen", "train_pansharpen", "hyperleaf.experiments.pansharpen"),
    ("pansharpen", "evaluate_methods", "hyperleaf.pansharpen.evaluation"),
    ("pansharpen", "markdown_tables", "hyperleaf.pansharpen.evaluation"),
    ("pansharpen", "score_fused", "hyperleaf.pansharpen.evaluation"),
    ("pansharpen", "patches", "hyperleaf.pansharpen.patches"),
    ("pansharpen", "split_indices", "hyperleaf.pansharpen.patches"),
    ("pansharpen", "band_statistics", "hyperleaf.pansharpen.patches"),
    ("pansharpen", "Standardised", "hyperleaf.pansharpen.network"),
    ("pansharpen", "sharpen", "hyperleaf.pansharpen.network"),
    ("ablation", "confidence_interval", "hyperleaf.experiments.statistics"),
    ("ablation", "run_ablation", "hyperleaf.experiments.runner"),
]


@pytest.mark.parametrize("module, name, home", _TRAIN_OLD_PATHS)
def test_train_old_paths_warn_and_resolve_to_the_moved_object(module, name, home):
    old = importlib.import_module(f"hyperleaf.train.{module}")
    with pytest.warns(DeprecationWarning, match=re.escape(home)) as rec:  # names the new home
        value = getattr(old, name)
    assert value is getattr(importlib.import_module(home), name)
    assert f"hyperleaf.train.{module}.{name}" in str(rec[0].message)
    # `from old import name` goes through the same path
    with pytest.warns(DeprecationWarning):
        exec(f"from hyperleaf.train.{module} import {name} as _x", {})


def test_every_former_name_of_the_train_shims_is_tested():
    listed = {(m, n) for m, n, _ in _TRAIN_OLD_PATHS}
    for module in ("objective", "segment", "leafplot", "losses", "diagnostics", "distributed",
                   "evaluate", "pansharpen"):
        old = importlib.import_module(f"hyperleaf.train.{module}")
        special = {("evaluate", "evaluate"), ("pansharpen", "load_pansharpen")}
        assert {(module, n) for n in old.MOVED} - special <= listed, module
        with pytest.raises(AttributeError, match="no_such_name"):
            old.no_such_name  # noqa: B018


def test_old_evaluate_is_the_tasks_own_evaluation(monkeypatch):
    """``hyperleaf.train.evaluate.evaluate`` warns and calls ``get_task(cfg.task).evaluate``."""
    from types import SimpleNamespace

    from hyperleaf.tasks import get_task
    from hyperleaf.train import evaluate as old

    calls = []
    task = get_task("fuse")
    monkeypatch.setattr(type(task), "evaluate",
                        lambda self, *a: calls.append((self.name, a)) or {"loss": 1.5})
    with pytest.warns(DeprecationWarning, match="get_task"):
        f = old.evaluate
    cfg = SimpleNamespace(task="fuse")
    assert f(cfg, "objective", "val", "cpu") == {"loss": 1.5}
    assert calls == [("fuse", (cfg, "objective", "val", "cpu", None))]


#: Modules that are only old paths (each warns, tested above or in their own tests), and the
#: deprecated loaders; nothing in the package or the benchmarks may use them.
DEPRECATED_MODULES = {
    *(f"hyperleaf.train.{m}" for m in ("objective", "segment", "leafplot", "losses",
                                       "diagnostics", "distributed", "evaluate", "pansharpen",
                                       "ablation")),
    "hyperleaf.data.pancollection", "hyperleaf.metrics.pansharpening", "hyperleaf.check",
    "hyperleaf.oracle",
}
DEPRECATED_NAMES = {("hyperleaf.train.build", "load_run"), ("hyperleaf.train", "load_run"),
                    ("hyperleaf.train.build", "load_fusion_net"),
                    ("hyperleaf.train", "load_fusion_net")}


#: The old names' own re-exports (the old path itself, not a use of it).
_OLD_NAME_REEXPORTS = {("hyperleaf/train/__init__.py", "from hyperleaf.train.build import load_run")}


def _deprecated_imports(path: Path) -> list[str]:
    """``line: what`` of every import of :data:`DEPRECATED_MODULES` / :data:`DEPRECATED_NAMES`
    in the file at ``path`` (module level or inside functions)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name in DEPRECATED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in DEPRECATED_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            for a in node.names:
                if (f"{node.module}.{a.name}" in DEPRECATED_MODULES
                        or (node.module, a.name) in DEPRECATED_NAMES):
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
    return found


def test_no_module_imports_a_deprecated_path():
    """Issue 21: old paths are for old callers only; the package (old-path modules aside) and
    the benchmarks import every name from its new home."""
    shims = {ROOT / "hyperleaf" / (m.replace("hyperleaf.", "").replace(".", "/") + ".py")
             for m in DEPRECATED_MODULES}
    assert all(p.is_file() for p in shims), sorted(p for p in shims if not p.is_file())
    offenders = []
    for path in sorted([*(ROOT / "hyperleaf").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        if path in shims:
            continue
        rel = path.relative_to(ROOT).as_posix()
        offenders += [f"{rel}:{hit}" for hit in _deprecated_imports(path)
                      if (rel, hit.split(": ", 1)[1]) not in _OLD_NAME_REEXPORTS]
    assert offenders == []


def test_the_deprecated_import_check_finds_each_form(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import hyperleaf.train.losses\n"
                 "from hyperleaf.train import distributed as hd\n"
                 "from hyperleaf.train.objective import LeafHead\n"
                 "def g():\n    from hyperleaf.train import load_run\n"
                 "from hyperleaf.train import TrainConfig\n")
    assert [h.split(":")[0] for h in _deprecated_imports(f)] == ["1", "2", "3", "5"]


def test_ship_is_a_package_and_every_name_still_imports_from_it():
    """SHIP gets a folder (issue 21: blocks, network, tiling, colour); ``from
    hyperleaf.models.ship import X`` keeps working for every public name of its modules."""
    import hyperleaf.models.ship as ship
    from hyperleaf.models.ship import blocks, colour, network, tiling

    assert Path(ship.__file__).name == "__init__.py"
    for module in (blocks, network, tiling, colour):
        for name in module.__all__:
            assert getattr(ship, name) is getattr(module, name), (module.__name__, name)
            assert name in ship.__all__
    assert ship.SHIP.__module__ == "hyperleaf.models.ship.network"
    from hyperleaf.models.registry import create_model

    assert type(create_model("ship", n_feat=4)) is ship.SHIP
