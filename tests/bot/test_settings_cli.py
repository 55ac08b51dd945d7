"""Settings and the `wavegate` command line: one clear line for a bad setting, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from tests.support.paths import ROOT

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WAVEGATE_"))}


def wavegate(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "DATABASE_URL", "PORT", "WAVEGATE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///wavegate.db"
    assert settings.port == 3000
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not settings.slack_configured


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "eighty", "PORT: "),
        ("PORT", "70000", "PORT: "),
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "SLACK_BOT_TOKEN: must be a bot token"),
        ("SLACK_APP_TOKEN", "abc", "SLACK_APP_TOKEN: must be an app-level token"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be a sqlite:/// or postgresql:// URL"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: "),
        ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL: must be an http(s) URL"),
    ],
)
def test_malformed_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_serve_without_a_token_stops_with_one_line(tmp_path: Path) -> None:
    result = wavegate("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wavegate: SLACK_BOT_TOKEN: required for `wavegate serve` (or use `wavegate console`)"
    ]


def test_serve_without_a_signing_secret_stops_with_one_line(tmp_path: Path) -> None:
    result = wavegate("serve", env={"SLACK_BOT_TOKEN": "xoxb-1"}, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("wavegate: SLACK_SIGNING_SECRET: required")


def test_bad_port_stops_start_up_without_a_traceback(tmp_path: Path) -> None:
    result = wavegate("serve", env={"PORT": "nope"}, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("wavegate: PORT:")


def test_invalid_policy_file_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yml"
    bad.write_text("version: 1\nplans: {default: [{name: a}]}\n")
    result = wavegate("console", env={"WAVEGATE_POLICY": str(bad)}, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"wavegate: WAVEGATE_POLICY: {bad} is invalid: plans.default[0].tiers")
    assert "wavegate policy check" in line


def test_policy_check_prints_ok() -> None:
    result = wavegate("policy", "check", "examples/policy.yml")
    assert (result.returncode, result.stdout) == (0, "ok\n")


def test_policy_check_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yml"
    bad.write_text(
        "version: 1\ntiers: [a]\nplans:\n  default:\n"
        "    - {name: one, tiers: [a], percent: 10, observe: 1h}\n"
        "    - {name: two, tiers: [a], percent: 50, observe: 1h}\n"
        "    - {name: three, tiers: [a], percent: 100, observe: 2x, colour: red}\n"
    )
    result = wavegate("policy", "check", str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        'plans.default[2].observe: invalid duration "2x"',
        "plans.default[2].colour: unknown key (check the spelling)",
    ]
    assert "Traceback" not in result.stderr


def test_db_upgrade_then_console_on_a_fresh_machine(tmp_path: Path) -> None:
    assert wavegate("db", "upgrade", cwd=tmp_path).returncode == 0
    assert (tmp_path / "wavegate.db").exists()
    result = wavegate("console", cwd=tmp_path, stdin="/ready new 1.0.0\n/ready\nquit\n")
    assert result.returncode == 0, result.stderr
    assert "Registered release candidate 1.0.0" in result.stdout
    assert "Readiness of 1.0.0 (candidate): 0 of 6 done." in result.stdout
    assert (
        "[#rollouts] (thread) @U0CONSOLE registered release candidate 1.0.0 (6 items)."
        in result.stdout
    )
    assert "migration-rollback — Migration and rollback procedures are tested" in result.stdout
