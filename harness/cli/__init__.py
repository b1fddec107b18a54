"""The comps-harness command: bring a topology up, clean after crashes, sweep, report, compare, benchmark.

Options shared with pytest come from one table (harness.options). Long commands print progress
to stderr; results go to stdout (JSON with --json). This module dispatches; the commands live in
harness.cli.commands, .sweep and .bench, and the parser in .parser.
"""

from __future__ import annotations

import logging
import os
import sys

from harness.cli.commands import rerun_in_vm, vm_rwdirs
from harness.cli.common import REPO
from harness.cli.parser import attach_negative_values, build_parser
from harness.errors import HarnessError, exit_code_of
from harness.system import signals
from harness.vm.command import IN_VM_ENV

__all__ = ["REPO", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(attach_negative_values(sys.argv[1:] if argv is None else argv))
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with signals.interrupts_unwind():
            if getattr(args, "vm", False) and not os.environ.get(IN_VM_ENV):
                return rerun_in_vm(args, list(sys.argv[1:] if argv is None else argv), vm_rwdirs(args))
            return args.func(args, extra) if getattr(args, "passthrough", False) else args.func(args)
    except HarnessError as exc:
        print(f"comps-harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        code = exit_code_of(exc)
        print(f"comps-harness: interrupted ({exc or 'SIGINT'}); everything it created was removed", file=sys.stderr)
        return code
    except BrokenPipeError:
        sys.stderr.close()  # `comps-harness compare ... | head`: the reader left; nothing more to say
        return 0
