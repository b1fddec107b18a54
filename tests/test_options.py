"""The one options table: the same entries, defaults and checks for argparse and pytest (pure)."""

from __future__ import annotations

import argparse

import pytest

from harness import options
from harness.errors import ConfigError
from harness.model.kinds import Mechanism, Strategy
from harness.model.schedule import baseline_of, build_plans
from harness.model.settings import MeasureSettings, PlanOptions, Settings, Tolerances


def parsed(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser()
    options.add_to_argparse(parser, options.OPTIONS)
    return options.settings_from(vars(parser.parse_args(argv)))


def test_defaults_are_the_dataclass_defaults():
    settings = parsed([])
    assert settings.plan == PlanOptions() and settings.measure == MeasureSettings()
    assert settings.tolerances == Tolerances()
    assert settings.run.backends == ("netns",) and settings.run.paths == 2 and settings.run.wireguard == "auto"


def test_every_option_has_a_unique_flag_and_a_field():
    flags = [flag for option in options.OPTIONS for flag in option.flags]
    assert len(flags) == len(set(flags))
    for option in options.OPTIONS:
        if option.section == "command":  # a command's own flag: its field is its dest, read by the command
            assert option.field == option.dest and option.scope in ("cli", "pytest", "both"), option.flag
        else:
            assert option.field in options.field_names(option.section), option.flag


def test_pytest_registers_the_same_table():
    registered = []

    class Group:
        def addoption(self, *flags, **kwargs):
            registered.append((flags, kwargs["dest"], kwargs.get("default"), kwargs.get("action")))

    options.add_to_pytest(Group())
    expected = [(o.flags, o.dest, None if o.action else o.default, o.action) for o in options.for_pytest()]
    assert registered == expected
    flags = {flag for entry in registered for flag in entry[0]}
    assert {"--observe", "--vm", "--sweep-progress"} <= flags and "--json" not in flags  # the plugin declares none


def test_values_are_parsed_into_typed_settings():
    settings = parsed(
        [
            "--intervals",
            "10ms,1s",
            "--strategy",
            "alternate,weighted-random",
            "--weights",
            "0.7,0.3",
            "--backend",
            "all",
            "--repeat",
            "5",
            "--wireguard",
            "userspace",
            "--duration",
            "20",
            "--switch-tolerance",
            "0.2",
        ]
    )
    assert settings.plan.intervals == (0.01, 1.0)
    assert settings.plan.strategies == (Strategy.ALTERNATE, Strategy.WEIGHTED_RANDOM)
    assert parsed(["--switch-mechanism", "both"]).plan.mechanisms == (Mechanism.NETLINK, Mechanism.SCRIPT)
    with pytest.raises(ConfigError, match=r"the script mechanism runs the demo's migrate\.sh"):
        parsed(["--strategy", "weighted-random", "--switch-mechanism", "both"])  # a plan it cannot run
    assert settings.run.backends == ("netns", "docker") and settings.run.wireguard == "wireguard-go"
    assert settings.measure.repeat == 5 and settings.plan.duration == 20.0 and settings.tolerances.switches == 0.2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--intervals", "0.1,,1"], "--intervals '0.1,,1' has an empty item"),
        (["--intervals", "10m"], "--intervals '10m' is not a number"),
        (["--paths", "9"], "--paths 9 must be between 2 and 8"),
        (["--degrade-drop", "0"], "--degrade-drop must be a finite number above 0"),
        (["--degrade-drop", "1"], "--degrade-drop 1 must be below 1"),
        (["--udp-rate", "fast"], "--udp-rate 'fast' is not a rate"),
        (["--run-id", "a b"], "--run-id 'a b' may hold only"),
        (["--seed", "x"], "--seed 'x' is not a whole number"),
    ],
)
def test_bad_values_name_their_option(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parsed(argv)


def test_plans_and_their_baseline_live_beside_the_schedule():
    plans = build_plans(parsed(["--intervals", "0.1,1", "--switch-mechanism", "both"]).plan, (1, 2))
    assert [plan.label for plan in plans] == [
        "alternate-i0.1s",
        "alternate-i0.1s-script",
        "alternate-i1s",
        "alternate-i1s-script",
    ]
    assert plans[0].duration == 2.0 and plans[2].duration == 10.0
    baseline = baseline_of(plans[1])
    assert baseline.strategy == Strategy.NONE and baseline.mechanism == Mechanism.NETLINK and not baseline.switches()


def test_sweep_passes_given_options_through_as_written():
    raw = {"intervals": "10ms,1", "repeat": "3", "strategy": None}
    assert options.passthrough_argv(raw, options.OPTIONS) == ["--intervals", "10ms,1"]


def test_a_one_interval_self_check_runs_at_the_longest_interval_only():
    from harness.model.schedule import build_plans
    from harness.model.settings import PlanOptions
    from harness.plugin import one_interval

    plans = build_plans(PlanOptions(intervals=(0.01, 1.0, 0.1)), (1, 2))
    assert [plan.interval for plan in one_interval(plans)] == [1.0]


def test_the_options_page_is_generated_from_the_table():
    from pathlib import Path

    from harness.options import OPTIONS, markdown

    page = Path(__file__).resolve().parent.parent / "docs" / "options.md"
    assert page.read_text() == markdown(), (
        "docs/options.md is out of date: .venv/bin/python -c 'from harness.options import markdown; "
        'print(markdown(), end="")\' > docs/options.md'
    )
    assert all(f"`{option.flag}`" in page.read_text() for option in OPTIONS)
