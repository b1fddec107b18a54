"""The one options table: every option's flags, default, help and parser, for argparse and pytest alike.

`add_to_argparse` and `add_to_pytest` register the same entries; `settings_from` turns the raw
text values into the frozen settings of harness.model.settings (parsing and validating once).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.data import PROFILES_FILE, shipped_traces, trace_path
from harness.errors import ConfigError
from harness.model import settings as s
from harness.model.events import EventKind, parse_events
from harness.model.kinds import Accel, GuestKind, StickySource, choose, wireguard_request
from harness.model.profiles import Profile, choose_profiles, load_profiles
from harness.model.schedule import MigrationPlan, build_plans
from harness.model.settings import (
    MeasureSettings,
    PlanOptions,
    RunSettings,
    Settings,
    Tolerances,
    VmSettings,
)
from harness.model.shards import parse_shard
from harness.model.traces import parse_trace

SECTIONS = {
    "run": RunSettings,
    "plan": PlanOptions,
    "measure": MeasureSettings,
    "tolerances": Tolerances,
    "vm": VmSettings,
}


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    section: str  # a key of SECTIONS
    field: str  # the settings field it fills
    default: str | None
    help: str
    parse: Callable[[str], Any]
    action: str | None = None  # argparse's: store_true for a switch, append for a repeatable option
    scope: str = "both"  # where it is offered: both (comps-harness and pytest), cli, or pytest

    @property
    def flag(self) -> str:
        return self.flags[0]

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _with_traces(events: tuple, flag: str) -> tuple:
    """Every trace an event names exists and is a Mahimahi trace, checked before anything starts."""
    for event in events:
        if event.kind != EventKind.TRACE or event.trace is None:
            continue
        for direction in ("up", "down") if event.direction == "both" else (str(event.direction),):
            path = trace_path(event.trace, direction)
            if path is None:
                shipped = ", ".join(shipped_traces())
                raise ConfigError(f"{flag} trace={event.trace}: no such trace file or shipped trace ({shipped})")
            try:
                parse_trace(path.read_text(), f"{flag} {path}")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{flag} {path}: cannot read it ({exc})") from None
    return events


def _opt(
    flags: str | tuple[str, ...],
    section: str,
    field: str,
    default: str | None,
    help: str,
    parse: Callable[[str, str], Any],
    *,
    action: str | None = None,
    scope: str = "both",
) -> Option:
    flags = (flags,) if isinstance(flags, str) else flags
    return Option(flags, section, field, default, help, lambda text, _p=parse, _f=flags[0]: _p(text, _f), action, scope)


def _flag(
    flags: str, help: str, *, default: str | None = None, action: str | None = None, scope: str = "cli"
) -> Option:
    """A command's own flag (section `command`: read by the command, not a setting of the run)."""
    return _opt(
        flags,
        "command",
        flags.lstrip("-").replace("-", "_"),
        default,
        help,
        lambda text, flag: text,
        action=action,
        scope=scope,
    )


def _file(text: str, flag: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"{flag} {text}: no such file")
    return path


def _duration(text: str, flag: str) -> float | None:
    return None if text == "auto" else s.parse_seconds(text, flag)


OPTIONS: tuple[Option, ...] = (
    # -- run ---------------------------------------------------------------------------------
    _opt(
        "--backend",
        "run",
        "backends",
        "netns",
        "netns | docker | all, or a comma list (default netns)",
        lambda text, flag: s.parse_backends(text),
    ),
    _opt(
        "--paths",
        "run",
        "paths",
        "2",
        "number of proxy paths (2..8, default 2)",
        lambda text, flag: s.parse_count(text, flag, minimum=s.MIN_PATHS, maximum=s.MAX_PATHS),
    ),
    _opt(
        "--wireguard",
        "run",
        "wireguard",
        "auto",
        "auto | kernel | wireguard-go (userspace is accepted for wireguard-go; default auto)",
        lambda text, flag: wireguard_request(text),
    ),
    _opt(
        "--run-id",
        "run",
        "run_id",
        None,
        "run id to use (default: a fresh one)",
        lambda text, flag: s.check_run_id(text, flag),
    ),
    _opt(
        "--results-dir",
        "run",
        "results_dir",
        "reports",
        "results go to DIR/<run id>/ (default reports)",
        lambda text, flag: Path(text),
    ),
    _opt(
        "--run-dir",
        "run",
        "run_dir_override",
        None,
        "results go exactly to DIR (default: --results-dir/<run id>)",
        lambda text, flag: Path(text),
    ),
    _opt(
        "--profile",
        "run",
        "profiles",
        "lan",
        "path profiles, comma separated: lan (unshaped, default), wan, asymmetric, lossy, cellular, flaky, or yours "
        "(--profiles); tests run once per profile, ids like [netns-wan-alternate-i0.1s]",
        lambda text, flag: tuple(dict.fromkeys(s.split_list(text, flag))),
    ),
    _opt(
        "--profiles",
        "run",
        "profiles_file",
        None,
        "a TOML file of more path profiles (the shipped file, harness/data/profiles/profiles.toml, shows the format)",
        lambda text, flag: Path(text),
    ),
    _opt(
        "--inventory",
        "run",
        "inventory",
        None,
        "the ssh backend's hosts (a TOML file, see docs/remote.md); also read by preflight and clean. Without "
        "it, --backend ssh and preflight make local SSH hosts",
        lambda text, flag: _file(text, flag),
    ),
    _opt(
        "--shard",
        "run",
        "shard",
        None,
        "run only the K-th of N parts of the collected tests, e.g. 2/4: parts balanced by expected duration "
        "(--shard-durations), a test's pairs always in one part; `comps-harness merge` joins the parts' results",
        lambda text, flag: parse_shard(text, flag),
    ),
    _opt(
        "--sweep-id",
        "run",
        "sweep_id",
        None,
        "the sweep this run is a shard of, recorded in every record; give every shard the same (default: the run id)",
        lambda text, flag: s.check_run_id(text, flag),
    ),
    _opt(
        "--shard-durations",
        "run",
        "shard_durations",
        None,
        "the durations table --shard balances with: an earlier run's durations.json (default: the table shipped); "
        "every shard must be given the same",
        lambda text, flag: s.existing_file(text, flag),
    ),
    # -- migration plans ---------------------------------------------------------------------
    _opt(
        "--intervals",
        "plan",
        "intervals",
        "0.01,0.1,1",
        "migration intervals, comma separated: seconds, or with s/ms (default 0.01,0.1,1)",
        s.parse_intervals,
    ),
    _opt(
        "--strategy",
        "plan",
        "strategies",
        "alternate",
        "comma list of alternate, weighted-random, fixed, none (default alternate)",
        lambda text, flag: s.parse_strategies(text),
    ),
    _opt(
        ("--switch-mechanism", "--mechanism"),
        "plan",
        "mechanisms",
        "netlink",
        "netlink (atomic route replace), script (the demo's migrate.sh), or both (default netlink)",
        lambda text, flag: s.parse_mechanisms(text),
    ),
    _opt(
        "--seed",
        "plan",
        "seed",
        "1",
        "seed of the random strategies (default 1)",
        lambda text, flag: s.parse_count(text, flag, minimum=0),
    ),
    _opt(
        "--jitter",
        "plan",
        "jitter",
        "0",
        "random shift of each switch, +- seconds (default 0)",
        lambda text, flag: s.parse_number(text, flag, allow_zero=True),
    ),
    _opt(
        "--weights",
        "plan",
        "weights",
        None,
        "weighted-random: per-path weights, e.g. 0.7,0.3 (default: flat Dirichlet)",
        s.parse_weights,
    ),
    _opt("--fixed", "plan", "fixed", None, "fixed strategy: TIME:PATH,... (seconds after start)", s.parse_fixed),
    _opt(
        "--sticky-source",
        "plan",
        "sticky_source",
        "auto",
        "when the client releases WireGuard's sticky source: off, switch, client (what the client itself sees), "
        "oracle (the server's view: not available to a real client), auto (off for kernel WireGuard, client for "
        "wireguard-go; default)",
        lambda text, flag: choose(StickySource, text, flag),
    ),
    _opt(
        "--fault",
        "plan",
        "faults",
        None,
        "break a path during every migration run: NAME@SECONDS[:PATH], comma separated; names: "
        "nat-removed, forward-drop, return-drop, wireguard-killed, proxy-down-up, route-refused, pinned, "
        "foreign-writer, blackhole (the proof must then fail; the same blackhole as --event is judged apart)",
        s.parse_faults,
    ),
    _opt(
        "--event",
        "plan",
        "events",
        None,
        "what a path does during every run, with and without migration: NAME[=ARG]@SECONDS[+DURATION][:PATH"
        "[:DIRECTION]], comma separated; names: blackhole, flap=PERIOD, rate=MBIT, trace=NAME|FILE, rebind, "
        "conntrack-expiry=IDLE_S, rekey, mtu=BYTES[/noicmp] (see docs/profiles.md; the proof judges the time "
        "outside them)",
        lambda text, flag: _with_traces(parse_events(text, flag), flag),
    ),
    _opt(
        "--path-trace",  # not --trace: pytest's own --trace starts its debugger
        "plan",
        "trace",
        None,
        "replay a delivery trace on the last path through every run, with and without migration: a shipped one "
        "(lte-stable, driving, wifi-dropouts) or a file in Mahimahi's format (FILE, or FILE.up and FILE.down); "
        "the same as --event trace=FILE@0",
        lambda text, flag: _with_traces(parse_events(f"trace={text}@0", flag), flag)[0],
    ),
    _opt(
        "--duration",
        "plan",
        "duration",
        "auto",
        "seconds each migration runs (auto: 10 intervals, at least 2 s)",
        _duration,
    ),
    # -- measurements ------------------------------------------------------------------------
    _opt(
        ("--min-pairs", "--repeat", "--reps"),
        "measure",
        "repeat",
        "3",
        "interleaved pairs (baseline, migration) every condition gets at least (default 3)",
        lambda text, flag: s.parse_count(text, flag, minimum=1, maximum=1000),
    ),
    _opt(
        "--max-pairs",
        "measure",
        "max_pairs",
        "12",
        "pairs a condition may grow to while its verdict is undecided, with group-sequential intervals "
        "(default 12; 0: fixed at --min-pairs)",
        lambda text, flag: s.parse_count(text, flag, minimum=0, maximum=1000),
    ),
    _opt(
        "--budget",
        "measure",
        "budget_s",
        None,
        "the sweep's time from its start to the report written, bring-up included (e.g. 270s, 4m30s): every "
        "test's minimum pairs first (from the durations table), the rest to undecided conditions; a test that no "
        "longer fits is skipped, said so (default and none: no limit; the main job: 4m45s)",
        lambda text, flag: None if str(text).strip().lower() == "none" else s.parse_duration(text, flag),
    ),
    _opt(
        "--budget-table",
        "measure",
        "durations",
        None,
        "the durations table --budget plans with: an earlier run's durations.json (default: the table shipped, "
        "measured on the 2-core reference machine)",
        lambda text, flag: s.existing_file(text, flag),
    ),
    _opt(
        "--probe-rate",
        "measure",
        "probe_rate",
        "2000",
        "UDP probe packets per second (default 2000)",
        lambda text, flag: s.parse_number(text, flag, maximum=100_000),
    ),
    _opt(
        "--iperf-seconds",
        "measure",
        "iperf_seconds",
        "2",
        "seconds per iperf3 run (default 2)",
        lambda text, flag: s.parse_number(text, flag, maximum=600),
    ),
    _opt(
        "--udp-rate",
        "measure",
        "udp_rate",
        "50M",
        "iperf3 UDP offered rate, e.g. 50M (default 50M)",
        lambda text, flag: s.parse_iperf_rate(text, flag),
    ),
    _opt(
        "--page-timeout",
        "measure",
        "page_timeout",
        "30",
        "seconds a page load may take before it fails (default 30)",
        lambda text, flag: s.parse_number(text, flag, maximum=600),
    ),
    _opt(
        "--download-sizes",
        "measure",
        "download_mb",
        "1,10",
        f"download file sizes in MB, at most {s.MAX_DOWNLOAD_MB:g} (default 1,10)",
        lambda text, flag: tuple(
            s.parse_number(part, flag, maximum=s.MAX_DOWNLOAD_MB) for part in s.split_list(text, flag)
        ),
    ),
    _opt(
        "--degrade-drop",
        "measure",
        "degrade_drop",
        "0.1",
        "share of packets the degraded-path loss scenario drops on the last proxy (default 0.1: half the proof's "
        "absolute --max-path-loss, caught by its relative check)",
        lambda text, flag: s.parse_share(text, flag, allow_zero=False),
    ),
    _opt(
        "--degrade-rate",
        "measure",
        "degrade_rate",
        "20mbit",
        "rate limit of the last proxy in the degraded-path throughput scenario (tc rate, default 20mbit)",
        s.parse_rate,
    ),
    # -- tolerances --------------------------------------------------------------------------
    _opt(
        "--switch-tolerance",
        "tolerances",
        "switches",
        "0.1",
        "fraction of planned switches that may be missing before the proof fails (default 0.1)",
        s.parse_share,
    ),
    _opt(
        "--max-path-loss",
        "tolerances",
        "max_path_loss",
        "0.2",
        "share of a path's packets a hop may lose (each direction) before the proof fails (default 0.2: "
        "TCP at full speed loses 6-7 %% per hop to congestion here; a broken path loses 25-100 %%)",
        s.parse_share,
    ),
    _opt(
        "--min-adherence",
        "tolerances",
        "min_adherence",
        "0.6",
        "share of the session's packets that must use the path the schedule named, judged at intervals >= "
        "--verdict-from-interval (default 0.6)",
        s.parse_share,
    ),
    _opt(
        "--min-endpoint-moves",
        "tolerances",
        "min_endpoint_moves",
        "0.5",
        "endpoint moves the server must see, as a share of the planned switches, judged at intervals >= "
        "--verdict-from-interval (default 0.5)",
        s.parse_share,
    ),
    _opt(
        "--throughput-tolerance",
        "tolerances",
        "throughput",
        "0.90",
        "throughput with migration must be >= this x baseline (default 0.90)",
        lambda text, flag: s.parse_number(text, flag),
    ),
    _opt(
        "--verdict-from-interval",
        "tolerances",
        "verdict_from_interval",
        "0.1",
        "throughput verdicts, adherence and the endpoint-move share apply to intervals >= this many seconds; "
        "below: reported (default 0.1)",
        lambda text, flag: s.parse_number(text, flag, allow_zero=True),
    ),
    _opt(
        "--pageload-tolerance",
        "tolerances",
        "pageload",
        "1.15",
        "page-load and download median must be <= this x baseline (default 1.15)",
        lambda text, flag: s.parse_number(text, flag),
    ),
    _opt(
        "--max-lost-per-switch",
        "tolerances",
        "max_lost_per_switch",
        "0",
        "probe packets that may be lost per switch with the atomic mechanism (default 0)",
        lambda text, flag: s.parse_number(text, flag, allow_zero=True),
    ),
    # -- the VM guest (comps-harness vm, and --vm) --------------------------------------------
    _opt(
        ("--kernel", "--vm-kernel"),
        "vm",
        "kernel",
        "auto",
        "the guest's kernel: auto (Debian's stock kernel, fetched into the project's .cache/ on first use) "
        "or the path of a vmlinuz whose modules lie in a lib/modules/<version>/ above it",
        lambda text, flag: text,
    ),
    _opt(
        ("--guest", "--vm-guest"),
        "vm",
        "guest",
        "auto",
        "the guest kind: qemu (a full kernel under KVM or TCG), uml (User-mode Linux: the kernel as a process, "
        "native speed without KVM; built from Debian's kernel source on first use), or auto (uml where its "
        "kernel is built, else qemu)",
        lambda text, flag: choose(GuestKind, text, flag),
    ),
    _opt(
        ("--accel", "--vm-accel"),
        "vm",
        "accel",
        "auto",
        "auto (KVM if a guest boots with it, else TCG, said in one line), kvm, or tcg (software emulation)",
        lambda text, flag: choose(Accel, text, flag),
    ),
    _opt(
        ("--cpus", "--vm-cpus"),
        "vm",
        "cpus",
        "2",
        "the guest's CPUs (default 2)",
        lambda text, flag: s.parse_count(text, flag, minimum=1, maximum=64),
    ),
    _opt(
        ("--memory", "--vm-memory"),
        "vm",
        "memory",
        "2G",
        "the guest's memory, e.g. 2G or 1536M (default 2G)",
        s.parse_memory,
    ),
    _opt(
        "--vm-timeout",
        "vm",
        "timeout_s",
        "4h",
        "the longest the guest may run: then its command is stopped and the guest powered off, with one line "
        "saying so (e.g. 90m, 4h; default 4h)",
        s.parse_duration,
    ),
    # -- what a command itself reads (not settings of the run) ------------------------------------
    _flag("--json", "print one JSON object (the benches, compare)", action="store_true"),
    _flag(
        "--out",
        "where the output goes: a sweep's directory (default reports/<new run id>/; its name is the run "
        "id), the report's HTML file (default: report.html beside the results), the compose demo's directory",
    ),
    _flag("--force", "sweep, merge: replace the results of a non-empty --out", action="store_true"),
    _flag(
        "--strict",
        "sweep: research verdicts beyond tolerance fail the sweep too (default: listed, exit 0)",
        action="store_true",
    ),
    _flag(
        "--observe",
        "capture on every proxy during the migration tests and record what each proxy sees "
        "(the report's 'What each proxy sees')",
        action="store_true",
        scope="both",
    ),
    _flag(
        "--vm",
        "run this command inside a guest with a stock Debian kernel (kernel WireGuard, netem; netns "
        "backend only); see --kernel, --accel, --cpus, --memory",
        action="store_true",
        scope="both",
    ),
    _flag(
        "--budget-from",
        "sweep: the wall-clock time (epoch seconds) the sweep started at, which --budget counts from",
        scope="pytest",
    ),
    _flag(
        "--sweep-progress",
        "print a progress line per test to stderr: done/total, elapsed, estimate left",
        action="store_true",
        scope="pytest",
    ),
    _flag("--hold", "up: seconds to hold the topology (default 5)", default="5"),
    _flag("--traffic", "up: ping the origin through wg0 while holding", action="store_true"),
    _flag(
        "--dry-run",
        "clean: list what would be removed, remove nothing; preflight: print every command per host, run none",
        action="store_true",
    ),
    _flag("--shards", "bench shards: the shard counts to predict, comma separated (default 1,2,4)", default="1,2,4"),
    _flag("--runs", "bench bringup: how many bring-ups and teardowns (default 10)", default="10"),
    _flag(
        "--pairs",
        "bench events: interleaved pairs (without, with migration) per event (default 6: the fewest whose median "
        "has a distribution-free 95 %% interval)",
        default="6",
    ),
    _flag(
        "--tolerance",
        "compare: worst acceptable NEW/OLD ratio for higher-is-better metrics (1/x for the others; default 0.9)",
        default="0.9",
    ),
    _flag("--fetch", "vm: only fetch the kernel into the cache (idempotent)", action="store_true"),
    _flag(
        "--rwdir", "vm: another directory writable in the guest (repeatable; the repository always is)", action="append"
    ),
)
BY_FLAG = {flag: option for option in OPTIONS for flag in option.flags}


def named(flags: Iterable[str]) -> list[Option]:
    return [BY_FLAG[flag] for flag in flags]


def in_sections(*sections: str) -> list[Option]:
    return [option for option in OPTIONS if option.section in sections]


def _argument(option: Option, default: str | None) -> dict[str, Any]:
    if option.action == "store_true":
        return {"dest": option.dest, "action": "store_true", "help": option.help}
    if option.action == "append":
        return {"dest": option.dest, "action": "append", "help": option.help}
    return {"dest": option.dest, "default": default, "help": option.help}


def add_to_argparse(
    parser: argparse.ArgumentParser,
    options: Iterable[Option],
    defaults: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
) -> None:
    """Register `options` (their text defaults and help may be overridden per command, by flag)."""
    for option in options:
        argument = _argument(option, (defaults or {}).get(option.flag, option.default))
        argument["help"] = (helps or {}).get(option.flag, argument["help"])
        parser.add_argument(*option.flags, **argument)


def for_pytest() -> list[Option]:
    """The options pytest offers (a command's own flags, such as --json, are the command's alone)."""
    return [option for option in OPTIONS if option.scope in ("both", "pytest")]


def add_to_pytest(group: Any) -> None:
    for option in for_pytest():
        group.addoption(*option.flags, **_argument(option, option.default))


def parse_section(section: str, raw: Mapping[str, Any]) -> Any:
    """The settings of one section from raw text values by dest (absent or None: the field's default)."""
    kwargs = {}
    for option in in_sections(section):
        text = raw.get(option.dest)
        if text is not None:
            kwargs[option.field] = option.parse(text)
    return SECTIONS[section](**kwargs)


def settings_from(raw: Mapping[str, Any]) -> Settings:
    """Every section, from raw text values by dest; a ConfigError names the first bad option."""
    settings = Settings(**{name: parse_section(name, raw) for name in SECTIONS})
    path_profiles(settings.run)  # unknown names and bad files stop here too
    plans_of(settings)  # and every constraint across options (a fault's path, jitter against the interval)
    return settings


def plans_of(settings: Settings) -> list[MigrationPlan]:
    """The migration plans the settings ask for, validated (build_plans)."""
    return build_plans(settings.plan, tuple(range(1, settings.run.paths + 1)))


def path_profiles(run: RunSettings) -> tuple[Profile, ...]:
    """The run's path profiles, by name, from the shipped file and --profiles; the traces their events name
    checked as --event's are."""
    chosen = choose_profiles(",".join(run.profiles), load_profiles(PROFILES_FILE, run.profiles_file))
    for profile in chosen:
        _with_traces(profile.events, f"--profile {profile.name}: its event")
    return chosen


def passthrough_argv(raw: Mapping[str, Any], options: Iterable[Option]) -> list[str]:
    """The given (non-default) options as argv text, exactly as the user wrote them (for `sweep` -> pytest)."""
    argv: list[str] = []
    for option in options:
        text = raw.get(option.dest)
        if text is not None and text != option.default:
            argv += [option.flag, str(text)]
    return argv


def field_names(section: str) -> set[str]:
    return {f.name for f in fields(SECTIONS[section])}


SECTION_TITLES = {
    "run": "What to build",
    "plan": "Migration plans",
    "measure": "Measurements",
    "tolerances": "Tolerances (how verdicts judge)",
    "vm": "The VM guest (comps-harness vm, --vm)",
    "command": "What a command reads itself (output, switches)",
}


def markdown() -> str:
    """docs/options.md: every option of the table, by section, with its default and help (generated)."""
    lines = [
        "# Options",
        "",
        "Generated from `harness/options.py` (the one options table): every option means the same for",
        "pytest and for `comps-harness` commands. Regenerate with",
        "`.venv/bin/python -c 'from harness.options import markdown; print(markdown(), end=\"\")' > docs/options.md`;",
        "a unit test fails while this page is out of date. Back to the [README](../README.md).",
        "",
    ]
    for section, title in SECTION_TITLES.items():
        lines += [f"## {title}", "", "| option | default | what it does |", "|---|---|---|"]
        for option in in_sections(section):
            flags = ", ".join(f"`{flag}`" for flag in option.flags)
            default = {"store_true": "(a switch)", "append": "(repeatable)"}.get(
                option.action or "", "(none)" if option.default is None else f"`{option.default}`"
            )
            lines.append(f"| {flags} | {default} | {option.help.replace('%%', '%').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def with_recorded_settings(records: list[Any]) -> list[Any]:
    """Records whose run record carries its typed settings: a file written before settings were recorded
    gets them from its option texts, parsed by this table as the run itself parsed them."""
    from dataclasses import replace

    from harness.errors import HarnessError
    from harness.model.records import RunRecord

    out = []
    for record in records:
        kept = record
        if isinstance(record, RunRecord) and not record.settings and record.options:
            try:
                kept = replace(record, settings=s.recorded(settings_from(record.options)))
            except HarnessError:
                pass  # options this version no longer reads: the report judges with the defaults
        out.append(kept)
    return out
