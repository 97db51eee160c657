"""CI must run the README's two commands exactly (the developers' guide): check they agree verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)[:2]]


def test_ci_runs_the_readme_commands_verbatim():
    install, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci, "the README's install command must appear verbatim in .ci/run"
    assert test in ci, "the README's test command must appear verbatim in .ci/run"
    assert "torch==2.13.0" in install  # the CPU build; pyproject.toml stays loose


def test_pyproject_torch_requirement_is_loose():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.1"' in text and "torch==" not in text
