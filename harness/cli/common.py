"""Shared by the commands: the checkout, progress lines, settings from arguments, JSON or text output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import options
from harness.errors import ConfigError
from harness.model.settings import (
    Settings,
)

VM_OPTIONS = options.in_sections("vm")  # the guest's options: for vm, --vm and a sweep rerun in a guest
REPO = Path(__file__).resolve().parent.parent.parent  # the source checkout: `sweep` runs its scenarios/


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settings_of(args: argparse.Namespace) -> Settings:
    return options.settings_from(vars(args))


def single_backend(settings: Settings) -> str:
    if len(settings.run.backends) != 1:
        raise ConfigError("--backend: this command takes one backend (netns, docker or ssh)")
    return settings.run.backends[0]


def emit(result: dict, as_json: bool) -> None:
    print(json.dumps(result) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))
