"""``hyperleaf evaluate`` dispatches every task the same way (issue 21): no branch on a task's
name in the command; each task declares the options its evaluation reads and needs, and its
report is written as --csv, --json and --markdown."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hyperleaf.cli import build_parser, main
from hyperleaf.tasks import Task, get_task, list_tasks, register_task, unregister_task
from hyperleaf.tasks.evaluation import EvaluationReport, given_outputs, scores_report

ROOT = Path(__file__).resolve().parents[1]


def _evaluate_dests() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest for a in sub.choices["evaluate"]._actions if a.dest != "help"}


@pytest.mark.parametrize("name", ["fuse", "segment", "pansharpen"])
def test_each_task_declares_real_options(name):
    task = get_task(name)
    dests = _evaluate_dests()
    assert set(task.evaluate_options) <= dests, set(task.evaluate_options) - dests
    assert set(task.evaluate_requires) <= set(task.evaluate_options)
    assert {"csv", "json", "markdown"} <= set(task.evaluate_options)


def test_the_command_does_not_branch_on_task_names():
    tree = ast.parse((ROOT / "hyperleaf" / "cli" / "evaluate.py").read_text(encoding="utf-8"))
    names = set(list_tasks())
    found = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
             for c in [node.left, *node.comparators]
             if isinstance(c, ast.Constant) and c.value in names]
    found += [node.lineno for node in ast.walk(tree)
              if isinstance(node, (ast.Tuple, ast.Set, ast.List))
              and {getattr(e, "value", None) for e in node.elts} >= {"fuse", "segment"}]
    assert found == []


class _Echo(Task):
    """A task whose evaluation reports what it was given (no run: ``weights`` not read)."""

    evaluate_options = ("data", "json", "csv", "markdown", "sensor")
    evaluate_requires = ("data",)
    seen: list[dict[str, Any]] = []

    def evaluate_outputs(self, options):
        if options.get("sensor") == "refuse":
            raise ValueError("sensor: refused before any work")
        return given_outputs(options)

    def evaluate_command(self, options, run, device) -> EvaluationReport:
        type(self).seen.append(dict(options))
        n = float(len(str(options["data"])))
        return scores_report(self.name, options, {"scores": {"length": n, "half": n / 2},
                                                  "higher_is_better": {"length": True,
                                                                       "half": False}})


@pytest.fixture
def echo():
    register_task("echo")(_Echo)
    _Echo.seen.clear()
    yield
    unregister_task("echo")


def test_a_registered_task_gets_the_same_dispatch(echo, tmp_path, capsys):
    out = {k: tmp_path / f"e.{k}" for k in ("json", "csv", "markdown")}
    argv = ["evaluate", "--task", "echo", "--data", "abcd"]
    assert main([*argv, *(x for k, p in out.items() for x in (f"--{k}", str(p)))]) == 0
    printed = capsys.readouterr().out
    assert "length ↑: 4" in printed and "half ↓: 2" in printed and "wrote " in printed
    assert _Echo.seen[0]["data"] == "abcd" and _Echo.seen[0]["weights"] is None
    rec = json.loads(out["json"].read_text())
    assert rec["task"] == "echo" and rec["scores"] == {"length": 4.0, "half": 2.0}
    assert out["csv"].read_text().splitlines() == ["score,value,higher_is_better",
                                                   "length,4,True", "half,2,False"]
    assert "| half ↓ | 2.0000 |" in out["markdown"].read_text()
    # refused by name: an option it does not read, a missing one, its own check; nothing run
    _Echo.seen.clear()
    for extra, message in ((["--fused", "x"], "--fused: does not apply to --task echo"),
                           (["--weights", "w"], "--weights: does not apply to --task echo")):
        assert main([*argv, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["evaluate", "--task", "echo"]) == 2
    assert "--data: required with --task echo" in capsys.readouterr().err
    assert main([*argv, "--sensor", "refuse", "--json", str(tmp_path / "r.json")]) == 2
    assert "--sensor: refused before any work" in capsys.readouterr().err
    assert main([*argv, "--csv", str(tmp_path)]) == 2  # an output path that is a folder
    assert "--csv" in capsys.readouterr().err
    assert _Echo.seen == [] and not (tmp_path / "r.json").exists()


def test_report_forms():
    rep = EvaluationReport(record={"x": float("nan")},
                           rows=[{"a": 1.0, "b": "s"}, {"a": 1 / 3, "c": True}], markdown="m")
    assert json.loads(rep.json()) == {"x": None}
    assert rep.csv().splitlines() == ["a,b,c", "1,s,", "0.3333333333,,True"]
    assert rep.render("markdown") == "m\n"
    with pytest.raises(ValueError, match="kind: expected one of csv, json, markdown"):
        rep.render("xml")
    with pytest.raises(ValueError, match="higher_is_better"):
        scores_report("t", {}, {"scores": {"a": 1.0}, "higher_is_better": {}})


def test_the_default_evaluation_needs_a_run():
    with pytest.raises(ValueError, match="weights: the toyless task evaluates a trained run"):
        t = Task()
        t.name = "toyless"
        t.evaluate_command({"data": "d"}, None, torch.device("cpu"))


def test_the_former_evaluation_entries_warn_and_resolve():
    from hyperleaf.cli import evaluate as cli_evaluate
    from hyperleaf.cli import segment as cli_segment
    from hyperleaf.tasks import fuse, segment

    with pytest.warns(DeprecationWarning, match="hyperleaf.tasks.segment.format_segment_report"):
        assert cli_segment.format_report is segment.format_segment_report
    with pytest.warns(DeprecationWarning, match="hyperleaf.tasks.segment.AUTHORS_NOTE"):
        assert cli_segment.AUTHORS_NOTE is segment.AUTHORS_NOTE
    with pytest.warns(DeprecationWarning, match="hyperleaf.tasks.fuse"):
        assert cli_evaluate.markdown_table is fuse.markdown_table
    with pytest.raises(AttributeError):
        cli_segment.no_such_name  # noqa: B018


def test_the_former_pansharpen_entry_runs_the_dispatch(capsys):
    from hyperleaf.cli import build_parser
    from hyperleaf.cli.pansharpen import evaluate_run

    args = build_parser().parse_args(["evaluate", "--task", "fuse", "--convention", "mmif"])
    with pytest.warns(DeprecationWarning, match="hyperleaf.cli.evaluate.run"):
        assert evaluate_run(args) == 2  # run as --task pansharpen, which reads no --convention
    assert "--convention: does not apply to --task pansharpen" in capsys.readouterr().err
