"""Test content served by `origin`: files to download and web pages, generated per run.

No page references anything outside the origin, so a browser never contacts an outside site.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

CHUNK = 1 << 20
# In every page: the observer view checks that no proxy ever sees it in clear (and the server does).
MARKER = "COMPS-PLAINTEXT-MARKER-5e2f9a"
MB = 1_000_000
PAGES = {
    # name: (objects, bytes per object)
    "small": (2, 5_000),
    "heavy": (50, 40_000),  # about 2 MB in 50 objects
    "many": (200, 1_000),  # many small objects
}


def file_name(size: int) -> str:
    return f"file-{size // MB}MB.bin" if size % MB == 0 else f"file-{size}B.bin"


def page_html(name: str, objects: int) -> str:
    # stylesheets: downloaded in full, and the load event waits for every one of them
    images = "\n".join(f'<link rel="stylesheet" href="{name}/obj-{i}.css">' for i in range(objects))
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{name}</title></head>\n'
        f"<body><h1>{name}: {objects} objects</h1>\n<p>{MARKER}</p>\n{images}\n</body></html>\n"
    )


def generate(directory: Path, file_sizes: tuple[int, ...] = (MB, 10 * MB)) -> dict[str, list[str]]:
    """Write the files and pages into `directory`; return the URL paths of each kind."""
    directory.mkdir(parents=True, exist_ok=True)
    for size in file_sizes:
        with (directory / file_name(size)).open("wb") as out:
            for left in range(size, 0, -CHUNK):  # incompressible, written in chunks (up to 1000 MB)
                out.write(os.urandom(min(CHUNK, left)))
    for name, (objects, size) in PAGES.items():
        (directory / name).mkdir(exist_ok=True)
        for i in range(objects):
            filler = base64.b64encode(os.urandom(size * 3 // 4)).decode()[: size - 6]
            (directory / name / f"obj-{i}.css").write_text(f"/* {filler} */")
        (directory / f"{name}.html").write_text(page_html(name, objects))
    return {"files": [file_name(size) for size in file_sizes], "pages": [f"{name}.html" for name in PAGES]}
