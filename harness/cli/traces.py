"""`python -m harness.cli.traces`: write the shipped delivery traces anew from their seed (harness.model.traces)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.data import TRACES_DIR
from harness.model.traces import DIRECTIONS, SHIPPED, generate, manifest, text_of


def write_shipped(target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    made = [generate(name) for name in SHIPPED]
    for trace in made:
        for direction in DIRECTIONS:
            (target / f"{trace.name}.{direction}").write_text(text_of(getattr(trace, direction)))
    (target / "traces.json").write_text(json.dumps(manifest(made), indent=2) + "\n")
    return len(made)


if __name__ == "__main__":
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else TRACES_DIR
    print(f"wrote {write_shipped(where)} trace pairs and traces.json into {where}")
