"""The README's usage example runs as printed."""

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102
    core, ball = ns["core"], ns["ball"]
    assert float(core.detach().norm()) > 0  # the step moved it
    assert float(core.detach().norm()) * float(ball.c.detach()) ** 0.5 < 1  # and kept it on the ball


def test_every_config_file_an_example_names_ships_and_validates():
    """`--config PATH` in README.md and docs/*.md: PATH is in the repository and is a valid
    configuration for the task the command names (issue 21: every file an example needs ships)."""
    from hyperleaf.train.config import TrainConfig, load_yaml

    root = Path(__file__).resolve().parents[1]
    seen = 0
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8").replace("\\\n", " ")
        for line in text.splitlines():
            for path in re.findall(r"--config\s+(\S+\.ya?ml)", line):
                if Path(path).stem.isupper():  # a placeholder (`--config FILE.yaml`)
                    continue
                assert (root / path).is_file(), f"{doc.name} names --config {path}: not shipped"
                task = re.search(r"--task\s+(\w+)", line)
                recipe = re.search(r"--recipe\s+([\w-]+)", line)
                base = {"task": task.group(1) if task else "fuse"}
                if recipe:
                    base["recipe"] = recipe.group(1)
                data = re.search(r"--data\s+(\S+)", line)
                if data:  # named, not read: the task's check needs to know there are data
                    base["data"] = data.group(1)
                TrainConfig.from_dict({**base, **load_yaml(root / path)}).validate()
                seen += 1
    assert seen >= 2, "no example names a --config file: this test would check nothing"


def test_every_readme_command_parses():
    """Every `.venv/bin/hyperleaf ...` line of the README is a valid command line for the
    parser as that command prepares it (train: the task's own flags); parsed, not run."""
    import shlex

    from hyperleaf.cli import COMMANDS, build_parser
    from hyperleaf.cli import train as cli_train

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    lines = [ln.split(" #", 1)[0].strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)
             for ln in block.splitlines() if ln.strip().startswith(".venv/bin/hyperleaf ")]
    assert len(lines) >= 12, lines
    seen = set()
    try:
        for line in lines:
            argv = shlex.split(line.replace("$DATA", "../shared/data"))[1:]
            assert argv[0] in COMMANDS, line
            cli_train.prepare(argv[1:] if argv[0] == "train" else [])
            args = build_parser().parse_args(argv)
            assert args.command == argv[0]
            seen.add(argv[0])
    finally:
        cli_train.prepare([])
    # every task's workflow is shown
    assert {"train", "fuse", "evaluate", "pansharpen", "leaderboard", "ablate"} <= seen
    for task in ("fuse", "pansharpen", "segment"):
        assert task == "fuse" or f"--task {task}" in text, task
