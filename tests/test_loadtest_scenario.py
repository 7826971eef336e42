"""liveload traffic scripts: the parser names the line of every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.scenario import ScenarioError, load, load_file, parse_check

SCENARIOS = Path(__file__).resolve().parent.parent / "loadtest" / "scenarios"

GOOD = """\
room: r1
duration_s: 10
products:
  - {id: p1, title: Mug, price: 1299}
phases:
  - viewers: {ramp_to: 10, over: 2}
  - danmaku: {rate: 5, from: 1, to: 9}
  - host: {at: 2, action: start_sale, as: flash, product: p1, price: 999, stock: 5}
  - buyers: {at: 3, sale: flash, count: 10, within: 1, retries: 1}
checks:
  - p99_latency_ms <= 250
  - oversold == 0
"""


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(text, "s.yaml")
    return info.value


def test_good_script_parses() -> None:
    s = load(GOOD, "s.yaml")
    assert s.room == "r1" and s.duration_s == 10 and s.max_viewers == 10
    assert [p.kind for p in s.phases] == ["viewers", "danmaku", "host", "buyers"]
    assert [str(c) for c in s.checks] == ["p99_latency_ms <= 250", "oversold == 0"]
    assert s.phases[3].line == 9


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    s = load_file(path)
    assert s.phases and s.checks


def test_bad_yaml_names_the_line() -> None:
    err = error_of("room: r1\nduration_s: 10\nphases:\n  - viewers: {ramp_to: 10\n  - x: [\n")
    assert err.line in (4, 5) and "bad YAML" in str(err)
    assert str(err).startswith(f"s.yaml:{err.line}:")


def test_tab_indentation_is_bad_yaml() -> None:
    err = error_of("room: r1\nduration_s: 10\nphases:\n\t- viewers: {ramp_to: 1}\n")
    assert err.line == 4


def test_unknown_top_level_key() -> None:
    err = error_of("room: r1\nduration_s: 10\nviewerz: 5\nphases: []\n")
    assert err.line == 3
    assert "unknown key 'viewerz'" in str(err) and "allowed:" in str(err)


def test_unknown_key_inside_a_phase() -> None:
    err = error_of(GOOD.replace("danmaku: {rate: 5,", "danmaku: {rat: 5, rate: 5,"))
    assert err.line == 7 and "unknown key 'rat'" in str(err)


def test_negative_rate() -> None:
    text = GOOD.replace("  - danmaku: {rate: 5, from: 1, to: 9}", "  - likes:\n      rate: -3")
    err = error_of(text)
    assert err.line == 8, str(err)
    assert "rate must be >= 0, got -3" in str(err)


def test_unknown_phase_kind() -> None:
    err = error_of(GOOD.replace("  - danmaku:", "  - danmakoo:"))
    assert err.line == 7 and "danmakoo" in str(err)


def test_buyers_need_a_named_sale_before_them() -> None:
    err = error_of(GOOD.replace("sale: flash", "sale: nope"))
    assert err.line == 9 and "nope" in str(err)


def test_window_must_fit_the_duration() -> None:
    err = error_of(GOOD.replace("to: 9", "to: 99"))
    assert err.line == 7 and "after duration_s" in str(err)


def test_bad_check_expression() -> None:
    err = error_of(GOOD.replace("oversold == 0", "oversold is zero"))
    assert err.line == 12 and "must look like" in str(err)
    with pytest.raises(ScenarioError):
        parse_check("p99 <== 3")
    assert parse_check("gaps == 0").passes(0) and not parse_check("p99_latency_ms <= 250").passes(251)


def test_missing_required_and_not_a_map() -> None:
    assert "duration_s" in str(error_of("room: r1\nphases: []\n"))
    assert error_of("- just\n- a list\n").line == 1


def test_scaled_keeps_the_shape() -> None:
    from loadtest.scenario import scaled

    s = scaled(load_file(SCENARIOS / "evening-peak.yaml"), 0.1)
    assert s.max_viewers == 500
    kinds = {p.kind: p.spec for p in s.phases if p.kind != "host"}
    assert kinds["danmaku"]["rate"] == 30 and kinds["buyers"]["count"] == 500
    sale = next(p.spec for p in s.phases if p.kind == "host" and p.spec["action"] == "start_sale")
    assert sale["stock"] == 50
