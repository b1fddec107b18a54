"""The nightly workflow passes actionlint (a wheel that carries the binary: installed with the test extra)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly.yml"


def test_the_nightly_workflow_passes_actionlint():
    linter = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert linter, "actionlint is missing: pip install -e '.[test]' (bootstrap.sh does)"
    out = subprocess.run([linter, "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_nightly_runs_on_the_runner_and_keeps_going():
    text = WORKFLOW.read_text()
    assert not re.search(r"^\s+container:", text, re.M), "a job container hides the runner's Docker engine and kernel"
    assert 'workflow_conclusion: ""' in text  # the previous night's results whatever its conclusion
    assert text.count("if: always()") >= 6 and "--junitxml=reports/junit.xml" in text
