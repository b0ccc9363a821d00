"""server/study/screening.py: each rule screens out what it names, and only that."""

import pytest

from server.study.screening import Facts, Screening, verdict

DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 "
           "Safari/537.36")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 "
        "Safari/604.1")
OK = {"WebAssembly": True, "Worker": True, "SharedArrayBuffer": True, "crossOriginIsolated": True}


def facts(ua=DESKTOP, window=(1280, 720), ping=20.0, features=None):
    return Facts(user_agent=ua, window=window, ping_ms=ping, features=features or OK)


@pytest.mark.parametrize("rules, seen, reason", [
    ({}, facts(ua=IPAD, window=(10, 10), ping=900), None),  # no rule set: everyone in
    ({"mobile": False}, facts(ua=IPAD), "device: phone or tablet"),
    ({"mobile": False}, facts(), None),
    ({"min_window": (1024, 700)}, facts(window=(800, 600)), "window: 800x600 < 1024x700"),
    ({"max_ping_ms": 100}, facts(ping=250.5), "connection: median ping 250.5 ms > 100 ms"),
    ({"max_ping_ms": 100}, facts(ping=None), "connection: median ping None ms > 100 ms"),
    ({"min_versions": {"Chrome": 200}}, facts(), "browser_version: Chrome 156 < 200"),
    ({"min_versions": {"Firefox": 200}}, facts(), None),  # not that browser
    ({"blocklist": ["X11"]}, facts(), "browser_blocked: X11"),
    ({}, facts(features={**OK, "SharedArrayBuffer": False}), "browser_features: missing SharedArrayBuffer"),
])
def test_each_rule_screens_out_what_it_names(rules, seen, reason):
    assert verdict(Screening.model_validate(rules), seen) == reason


def test_a_bad_screening_setting_names_the_field(tmp_path):
    from tests.unit.test_game_scenes import error_of
    from tests.unit.test_policies import write

    message = error_of(write(tmp_path, {}, {}, screening={"max_ping_ms": -3}))
    assert "screening.max_ping_ms" in message
