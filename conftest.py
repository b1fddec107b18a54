"""Top-level conftest. The harness plugin itself is registered through the pytest11 entry point
(pyproject.toml), so installing the package is what enables it; nothing else is needed here."""
