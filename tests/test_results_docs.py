"""Results on file: every results block of the docs is the rendering of its committed file
(re-rendered and compared), and every results file records its provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperleaf.experiments.render import (
    BLOCK,
    REQUIRED_KEYS,
    main,
    render_docs,
    render_file,
)

ROOT = Path(__file__).resolve().parents[1]
#: The files in hyperleaf.experiments.render's format (rendered into docs blocks by it). Other
#: results files belong to their own renderers (benchmarks/vifb_published.py, bench_pansharpen.py,
#: bench_train.py), whose tests compare their tables with the docs.
RESULTS = sorted(p for p in (ROOT / "results").glob("*.json")
                 if "results_format" in json.loads(p.read_text(encoding="utf-8")))
OTHER_RESULTS = sorted(p for p in (ROOT / "results").glob("*.*") if p.suffix in (".json", ".csv")
                       and p not in RESULTS)


def test_docs_tables_equal_their_rendering():
    stale = render_docs(ROOT, write=False)
    assert not stale, ("docs tables differ from their results files; rerun "
                       "`python -m hyperleaf.experiments.render`: "
                       + "; ".join(f"{d}: {f}" for d, f in stale.items()))


def test_every_block_names_a_committed_file_and_every_file_is_used():
    used = set()
    for doc in [*ROOT.glob("docs/*.md"), ROOT / "benchmarks" / "README.md"]:
        for m in BLOCK.finditer(doc.read_text(encoding="utf-8")):
            assert (ROOT / m.group("file")).is_file(), (doc, m.group("file"))
            used.add((ROOT / m.group("file")).resolve())
    assert used, "no results block in the docs"
    assert {p.resolve() for p in RESULTS} <= used, "a results file no table renders"
    # the other renderers' files: each is named where its table is (docs or benchmarks/README)
    text = "\n".join(d.read_text(encoding="utf-8") for d in
                     [*ROOT.glob("docs/*.md"), ROOT / "benchmarks" / "README.md"])
    unnamed = [p.name for p in OTHER_RESULTS if f"results/{p.name}" not in text]
    assert unnamed == [], "results files no doc names"


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_results_files_record_provenance(path):
    rec = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    assert not missing, f"{path.name} lacks {missing}"
    assert rec["commit"] and rec["command"] and rec["hardware"]
    for item in rec["inputs"]:
        assert len(item["sha256"]) == 64 and item["name"]
    assert path.stat().st_size < 2_000_000  # small JSON only
    if rec["kind"] == "ablation":
        assert "Unit of replication" in render_file(path)


def test_a_stale_table_is_found_and_rewritten(tmp_path):
    rec = {"results_format": "hyperleaf-results/1", "kind": "table", "caption": "x.",
           "columns": ["a"], "rows": [[1.0]], "commit": "c", "command": "k"}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.json").write_text(json.dumps(rec))
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "d.md"
    doc.write_text("intro\n<!-- BEGIN RESULTS results/t.json -->\nold\n<!-- END RESULTS -->\n")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert main(["--root", str(tmp_path)]) == 0
    assert "| 1 |" in doc.read_text() and main(["--root", str(tmp_path), "--check"]) == 0


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_rendered_tables_are_well_formed(path):
    """Every row of every rendered table has as many cells as its header."""
    header = None
    for line in render_file(path).splitlines():
        if not line.startswith("|"):
            header = None
            continue
        n = line.count("|")
        if header is None:
            header = n
        assert n == header, line


def _load(name: str) -> dict:
    return json.loads((ROOT / "results" / name).read_text(encoding="utf-8"))


def test_table_rows_agree_with_the_raw_values_on_file():
    """The rendered rows of the measured tables are their files' raw ``values``, formatted (a
    row edited by hand, or a script whose rows and values drift apart, fails here)."""
    golden = _load("ship_golden.json")
    assert [[v["path"], v["threads"], f"{v['pair 1']:.2g}", f"{v['pair 8']:.2g}"]
            for v in golden["values"]] == golden["rows"]
    tiling = _load("ship_tiling.json")
    assert [[v["tile"], v["overlap"], f"{v['max']} / 255", f"{v['mean']:.2f} / 255"]
            for v in tiling["values"]] == tiling["rows"]
    tno = _load("ship_tno_official.json")
    names = tno["config"]["metrics"]
    images = tno["values"]["images"]
    assert len(images) == 21 and [r[0] for r in tno["rows"][:-1]] == [i["image"] for i in images]
    for row, img in zip(tno["rows"], images):
        assert row[1:] == [f"{img[m]:.4f}" for m in names]
    for m in names:  # the mean row is the mean of the images on file
        assert abs(sum(i[m] for i in images) / len(images) - tno["values"]["mean"][m]) < 1e-9
    conv = _load("metric_conventions_tno.json")
    std, mmif = conv["values"]["standard"], conv["values"]["mmif"]
    assert [r[0] for r in conv["rows"]] == [m for m in std if std[m] != mmif[m]]
    for row in conv["rows"]:
        assert row[2:] == [f"{std[row[0]]:.6f}", f"{mmif[row[0]]:.6f}"]


def test_metric_conventions_measure_the_images_of_the_ship_tno_table():
    """docs/metrics.md's convention means are of the same fused PNGs (by SHA-256) as
    docs/ship.md's per-image table of the authors' weights."""
    def fused(name: str) -> dict[str, str]:  # the PNG inputs outside the TNO folder
        return {Path(i["name"]).name: i["sha256"] for i in _load(name)["inputs"]
                if "/data/tno/" not in i["name"] and i["name"].endswith(".png")}
    ship, conv = fused("ship_tno_official.json"), fused("metric_conventions_tno.json")
    assert len(ship) == 21 and ship == conv
