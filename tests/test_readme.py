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
