"""The configuration's sections (run / task / model / data): ``config.yaml`` is written grouped,
the grouped and the old flat form are both read (old run folders still resume and load), code
keeps flat attribute access, each task validates its own section, and docs/configuration.md
lists every key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from hyperleaf.tasks import Task, get_task, list_tasks
from hyperleaf.train import ConfigError, TrainConfig, train
from hyperleaf.train.config import (
    GROUPED_NAMES,
    SECTION_OF,
    SECTIONS,
    flatten_config,
    key,
    load_run_config,
    markdown_table,
)
from tests.test_train import TINY, load_run, tiny

ROOT = Path(__file__).resolve().parents[1]


def test_every_key_has_exactly_one_section_and_a_meaning():
    # task_options holds the running task's own keys (Task.config_keys), not a key itself
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name != "task_options"]
    names = [f.name for f in fields]
    assert sorted(SECTION_OF) == sorted(names)
    assert set(SECTION_OF.values()) == set(SECTIONS)
    for f in fields:
        assert f.metadata["doc"].strip(), f.name
    for task in list_tasks():  # the task's own keys: a section each, a meaning each
        for name, k in get_task(task).config_keys.items():
            assert k.section in SECTIONS and k.doc.strip() and name not in SECTION_OF, name
        grouped = TrainConfig(task=task).to_grouped()
        # nothing lost or doubled: the engine's keys and the task's own
        assert sum(len(v) for v in grouped.values()) == len(names) + len(
            get_task(task).config_keys)


def test_key_rejects_an_unknown_section_and_copies_lists():
    with pytest.raises(ValueError, match="section: must be one of run, task, model, data"):
        key("training", 1, "x")
    a, b = TrainConfig(task="segment"), TrainConfig(task="segment")
    a.widths3d.append(256)  # a task's list default, read and changed in place, stays changed
    assert a.widths3d == [16, 32, 64, 128, 256] and a.task_options["widths3d"] == a.widths3d
    assert b.widths3d == [16, 32, 64, 128] and TrainConfig.steps == 100
    a, b = TrainConfig(), TrainConfig()
    a.lr_milestones.append(30000)  # and the engine's
    assert b.lr_milestones == [15000, 25000]


def test_grouped_and_flat_forms_read_the_same():
    cfg = tiny("unused", task="segment", num_classes=3)
    g = cfg.to_grouped()
    assert list(g) == list(SECTIONS)
    assert g["task"]["name"] == "segment" and g["model"]["name"] is None
    assert g["data"]["path"] is None and g["model"]["num_classes"] == 3
    assert g["run"]["steps"] == TINY["steps"] and "steps" not in g["task"]
    assert TrainConfig.from_dict(g) == cfg == TrainConfig.from_dict(cfg.to_dict())
    # through YAML text as config.yaml holds it, and with '-' spellings
    assert TrainConfig.from_dict(yaml.safe_load(yaml.safe_dump(g))) == cfg
    assert TrainConfig.from_dict({"run": {"batch-size": 3}}).batch_size == 3
    # the flat name is accepted inside its own section too
    assert TrainConfig.from_dict({"data": {"data": None, "crop": 48}}).crop == 48


def test_mixed_form_and_its_errors():
    cfg = TrainConfig.from_dict({"run": {"steps": 3}, "crop": 48, "task": "fuse"})
    assert (cfg.steps, cfg.crop, cfg.task) == (3, 48, "fuse")
    with pytest.raises(ConfigError, match=r"x.yaml: run.crop: crop belongs to section 'data'"):
        TrainConfig.from_dict({"run": {"crop": 48}}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"model.nope: unknown key \(known in model: name"):
        TrainConfig.from_dict({"model": {"nope": 1}})
    with pytest.raises(ConfigError, match="steps: steps is given twice"):
        TrainConfig.from_dict({"run": {"steps": 3}, "steps": 4})
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        TrainConfig.from_dict({"nope": 1})
    # values are validated the same in either form
    with pytest.raises(ConfigError, match="^crop: must be >= 16, got 8") as info:
        TrainConfig.from_dict({"data": {"crop": 8}})
    assert info.value.key == "crop"


def test_flatten_config_keeps_unknown_flat_keys_for_the_caller():
    assert flatten_config({"nope": 1, "run": {"seed": 2}}) == {"nope": 1, "seed": 2}
    assert flatten_config({"data": "DIR"}) == {"data": "DIR"}  # flat: data is a path
    assert flatten_config({"data": {"path": "DIR"}}) == {"data": "DIR"}
    assert GROUPED_NAMES == {"task": "name", "model": "name", "data": "path"}


def test_attribute_access_and_replace_stay_flat():
    cfg = TrainConfig()
    assert (cfg.steps, cfg.crop, cfg.n_feat, cfg.loss) == (100, 32, 8, "hyperleaf")
    assert cfg.replace(crop=64).crop == 64
    with pytest.raises(ConfigError, match="^crop: must be >= 16"):
        cfg.replace(crop=4)


def test_a_task_sees_its_section_and_what_it_declares():
    cfg = TrainConfig()
    view = cfg.section_view("task", needs=("crop",), owner="task 'x'")
    assert view.loss == "hyperleaf" and view.task == "fuse" and view.crop == 32
    with pytest.raises(AttributeError, match="task 'x' reads config key 'steps' \\(section run\\)"
                                             " without declaring it in config_needs"):
        _ = view.steps
    with pytest.raises(AttributeError, match="read-only"):
        view.loss = "x"
    with pytest.raises(ValueError, match="needs: unknown config keys"):
        cfg.section_view("task", needs=("nope",))
    for name in list_tasks():
        task = get_task(name)
        assert all(k in SECTION_OF for k in task.config_needs), name


def test_the_engine_hands_the_task_only_its_section(monkeypatch):
    seen = {}

    def check(self, cfg):
        seen["view"] = cfg
        if cfg.w_ssim > 0.4:
            raise ValueError("w_ssim: too big for this task")
        _ = cfg.crop  # an engine data key the fuse task did not declare in config_needs

    monkeypatch.setattr(type(get_task("fuse")), "check_config", check, raising=False)
    with pytest.raises(ConfigError, match="^w_ssim: too big for this task") as info:
        TrainConfig().validate()
    assert info.value.key == "w_ssim"
    with pytest.raises(AttributeError, match="task 'fuse' reads config key 'crop'"):
        TrainConfig(w_ssim=0.0).validate()
    assert repr(seen["view"]).startswith("ConfigView(")


def test_segment_task_checks_through_its_declared_keys():
    assert set(get_task("segment").config_needs) >= {"model", "data", "crop"}
    with pytest.raises(ConfigError, match="^model: the segment task builds"):
        TrainConfig(task="segment", model="ship").validate()
    assert Task.config_needs == ()


@pytest.mark.parametrize("task", list_tasks())
def test_every_task_refuses_keys_only_another_task_reads(task):
    foreign = get_task(task).foreign_keys
    assert foreign, f"{task} declares no foreign keys"
    # a valid value (a bool flipped) of one of them: only the task refuses it
    owners = {k: next(get_task(t).config_keys[k] for t in list_tasks()
                      if k in get_task(t).config_keys) for k in foreign}
    name = next(k for k in foreign if owners[k].type == "bool")
    value = not owners[name].default
    with pytest.raises(ConfigError, match=f"^{name}: does not apply to the {task} task") as info:
        TrainConfig(task=task, **{name: value}).validate()
    assert info.value.key == name


def test_pan_only_keys_are_refused_by_fuse_and_segment():
    for task in ("fuse", "segment"):
        for name, value in (("sensor", "WV3"), ("normalise", False), ("train_index", "0-3"),
                            ("val_index", "4"), ("ms_bands", 4), ("ratio", 4)):
            with pytest.raises(ConfigError, match=f"^{name}: does not apply to the {task}"):
                TrainConfig(task=task, **{name: value}).validate()


def test_fuse_and_segment_refuse_each_others_keys_and_recipes():
    with pytest.raises(ConfigError, match="^seg_loss: does not apply to the fuse task"):
        TrainConfig(seg_loss="leaf-authors").validate()
    with pytest.raises(ConfigError, match="^n_feat: does not apply to the segment task"):
        TrainConfig(task="segment", n_feat=4).validate()
    with pytest.raises(ConfigError, match="^model: the fuse task trains SHIP"):
        TrainConfig(model="leaf-unet").validate()
    assert TrainConfig(model="ship").validate().model == "ship"
    with pytest.raises(ConfigError, match="^recipe: 'ship-authors' is not a recipe of the "
                                          "segment task \\('ship-authors' is the fuse task's") as info:
        TrainConfig.from_dict({"task": "segment", "recipe": "ship-authors"})
    assert info.value.key == "recipe"
    with pytest.raises(ConfigError, match="^recipe: 'leaf-authors' is not a recipe of the fuse"):
        TrainConfig.from_dict({"task": "fuse", "recipe": "leaf-authors"})
    # each recipe still works for its own task
    assert TrainConfig.from_dict({"recipe": "ship-authors"}).loss == "ship-authors"
    assert TrainConfig.from_dict({"recipe": "leaf-authors"}).task == "segment"


def test_run_folder_writes_grouped_config_and_reloads(tmp_path):
    out = tmp_path / "run"
    train(tiny(out, steps=2, save_every=2), progress=False)
    text = (out / "config.yaml").read_text()
    saved = yaml.safe_load(text)
    assert list(saved) == list(SECTIONS) and saved["task"]["name"] == "fuse"
    assert load_run_config(out / "config.yaml") == tiny(out, steps=2, save_every=2)
    objective, cfg = load_run(out)
    assert cfg.n_feat == TINY["n_feat"]


def _flatten_run_file(run: Path) -> None:
    """Rewrite ``run``'s config.yaml in the flat form runs wrote before the sections."""
    cfg = load_run_config(run / "config.yaml")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def test_an_old_flat_run_folder_still_loads_and_resumes(tmp_path):
    out = tmp_path / "old"
    train(tiny(out, steps=2, save_every=2), progress=False)
    ref, ref_cfg = load_run(out)
    _flatten_run_file(out)
    assert "steps: 2" in (out / "config.yaml").read_text().splitlines()  # flat, top level
    objective, cfg = load_run(out)
    assert cfg == ref_cfg
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(objective.net(x, x), ref.net(x, x))
    # --resume continues it to 4 steps; the run file is rewritten grouped
    result = train(tiny(out, steps=4, save_every=2), resume=True, progress=False,
                   explicit=frozenset({"steps"}))
    assert result is not None
    assert list(yaml.safe_load((out / "config.yaml").read_text())) == list(SECTIONS)
    assert load_run_config(out / "config.yaml").steps == 4


def test_a_grouped_config_file_on_the_command_line(tmp_path, capsys):
    from hyperleaf.cli import main

    f = tmp_path / "c.yaml"
    own = get_task("fuse").config_keys
    section = {k: SECTION_OF[k] if k in SECTION_OF else own[k].section for k in TINY}
    g = {s: {k: v for k, v in TINY.items() if section[k] == s} for s in SECTIONS}
    f.write_text(yaml.safe_dump(g))
    out = tmp_path / "run"
    assert main(["train", "--config", str(f), "--steps", "2", "--save-every", "2",
                 "--out", str(out), "--no-progress"]) == 0
    cfg = load_run_config(out / "config.yaml")
    assert cfg.steps == 2 and cfg.n_feat == TINY["n_feat"] and cfg.crop == TINY["crop"]
    capsys.readouterr()
    # a bad value in the file names the key; the same bad value as a flag names the flag
    f.write_text(yaml.safe_dump({"data": {"crop": 8}}))
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "x")]) == 2
    assert "error: crop: must be >= 16" in capsys.readouterr().err
    assert main(["train", "--crop", "8", "--out", str(tmp_path / "x")]) == 2
    assert "error: --crop: must be >= 16" in capsys.readouterr().err
    f.write_text(yaml.safe_dump({"run": {"crop": 64}}))
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "x")]) == 2
    assert "run.crop: crop belongs to section 'data'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_docs_table_is_generated_from_the_code():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN GENERATED BY markdown_table() -->\n", "<!-- END GENERATED -->"
    assert begin in doc and end in doc
    table = doc.split(begin, 1)[1].split(end, 1)[0]
    assert table == markdown_table(), (
        "docs/configuration.md is stale: regenerate its table with "
        "python -c 'from hyperleaf.train.config import markdown_table; "
        "print(markdown_table(), end=\"\")'")


def test_two_curvatures_each_reaches_its_own_part():
    """`curvature` is the H2FR head's (learned), `hdgfb_curvature` every HDGFB block's (fixed)."""
    from hyperleaf.tasks.fuse import build_fusion_objective

    cfg = TrainConfig(curvature=0.7, hdgfb_curvature=0.3, n_feat=4, hdgfb_hidden=8,
                      ball_dim=4).validate()
    obj = build_fusion_objective(cfg)
    blocks = list(obj.net.hdgfb)
    assert len(blocks) == 3
    assert all(b.c == pytest.approx(0.3, rel=1e-6) for b in blocks)
    assert obj.head.ball.c.item() == pytest.approx(0.7, rel=1e-12)
    # the default stays the seed's
    default = build_fusion_objective(TrainConfig(n_feat=4, hdgfb_hidden=8).validate())
    assert all(b.c == pytest.approx(0.2, rel=1e-6) for b in default.net.hdgfb)
    with pytest.raises(ConfigError, match="^hdgfb_curvature: must be finite and > 0"):
        TrainConfig(hdgfb_curvature=0.0).validate()


def test_leaf_unet_refuses_a_second_curvature():
    with pytest.raises(ConfigError, match="^hdgfb_curvature: leaf-unet3d has one curvature"):
        TrainConfig(task="segment", model="leaf-unet3d", hdgfb_curvature=0.3).validate()


def _number_or_text(text: str):
    value = yaml.safe_load(text)
    try:  # YAML 1.1 reads 1e-4 as text
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def test_the_leaf_authors_recipe_table_in_the_docs_is_the_recipe():
    """docs/segmentation.md lists `--recipe leaf-authors`'s keys and values: every row equals
    the recipe the segment task declares (a key or value changed in one place only fails)."""
    from hyperleaf.train.config import RECIPES

    doc = (ROOT / "docs" / "segmentation.md").read_text(encoding="utf-8")
    table = doc.split("`--recipe leaf-authors` sets these", 1)[1].split("\n\n", 2)[1]
    listed = {}
    for row in table.splitlines()[2:]:
        keys, values = (c.strip() for c in row.strip("|").split("|")[:2])
        keys = [k.strip(" `") for k in keys.split(",")]
        values = [_number_or_text(v.strip(" `")) for v in values.split(",")]
        if len(values) == 1:  # one value for several keys (crop, val_crop)
            values = values * len(keys)
        assert len(keys) == len(values), row
        listed.update(zip(keys, values))
    recipe = dict(RECIPES["leaf-authors"])
    assert recipe.pop("task") == "segment"
    assert listed == recipe
