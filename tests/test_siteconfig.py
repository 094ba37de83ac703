"""The site config file pins what every run on the site's nodes assumes (issue 13, item 6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from preflight import siteconfig
from preflight.cli import app
from preflight.errors import ConfigError
from tests.harness import assert_one_line_error, runner


def test_the_config_pins_the_baseline_of_a_live_run(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('baseline = "dgx-h100-roce"\n')
    args = ["run", "--only", "cpu.smt", "--format", "json"]
    result = runner.invoke(app, args, env={"PREFLIGHT_CONFIG": str(config)})
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.stdout)["baseline"]["name"] == "dgx-h100-roce"
    # --baseline outranks the config; a profile is not one of the site's nodes.
    result = runner.invoke(
        app, [*args, "--baseline", "generic"], env={"PREFLIGHT_CONFIG": str(config)}
    )
    assert json.loads(result.stdout)["baseline"]["name"] == "generic"
    result = runner.invoke(
        app, [*args, "--profile", "dgx-h100"], env={"PREFLIGHT_CONFIG": str(config)}
    )
    assert json.loads(result.stdout)["baseline"]["name"] == "dgx-h100"


def test_a_bad_config_is_one_line_and_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('baselin = "dgx-h100"\n')
    result = runner.invoke(app, ["run", "--only", "cpu.smt"], env={"PREFLIGHT_CONFIG": str(config)})
    assert_one_line_error(result, 3, "unknown key 'baselin' (did you mean 'baseline'?)")


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {"PREFLIGHT_CONFIG": str(path)}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("baseline = 3\n", "baseline must be a baseline name or a .toml path"),
        ("baseline = \n", "invalid TOML"),
        ('site = "x"\n', "unknown key 'site'"),
        ("x" * (siteconfig.MAX_BYTES + 1), "larger than"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        siteconfig.load(write(tmp_path, text))


def test_a_named_config_must_exist_and_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        siteconfig.load({"PREFLIGHT_CONFIG": str(tmp_path / "absent.toml")})
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        siteconfig.load({"PREFLIGHT_CONFIG": str(fifo)})  # never blocks on a FIFO


def test_no_config(tmp_path: Path) -> None:
    assert siteconfig.load({"PREFLIGHT_CONFIG": ""}) == siteconfig.SiteConfig()


def test_a_relative_baseline_path_is_relative_to_the_config(tmp_path: Path) -> None:
    env = write(tmp_path, 'baseline = "baselines/site.toml"\n')
    assert siteconfig.load(env).baseline == str(tmp_path / "baselines" / "site.toml")
