"""Settings: layering, validation messages, and the committed defaults file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from salesopt.config import Settings, load_settings, parse_set_flags
from salesopt.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "env.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_yaml_lists_every_default() -> None:
    committed = yaml.safe_load((ROOT / "conf" / "base.yaml").read_text())
    assert load_settings(ROOT / "conf" / "base.yaml", environ={}) == Settings()
    assert set(committed) == set(Settings.model_fields) - {"demo"}


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "databricks.yaml", "test.yaml"])
def test_environment_files_load(name: str) -> None:
    settings = load_settings(ROOT / "conf" / name, environ={})
    assert settings.spark.shuffle_partitions >= 1


def test_misspelt_key_names_key_and_file(tmp_path: Path) -> None:
    conf = _write(tmp_path, "segmentation:\n  kk: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'segmentation.kk' in .*env.yaml"):
        load_settings(conf, environ={})


def test_wrong_type_names_key_file_and_value(tmp_path: Path) -> None:
    conf = _write(tmp_path, "forecast:\n  horizon: soon\n")
    with pytest.raises(ConfigError) as err:
        load_settings(conf, environ={})
    message = str(err.value)
    assert "forecast.horizon" in message and "env.yaml" in message and "'soon'" in message


def test_out_of_range_value(tmp_path: Path) -> None:
    conf = _write(tmp_path, "recommend:\n  k: 0\n")
    with pytest.raises(ConfigError, match=r"recommend.k.*greater than or equal to 1"):
        load_settings(conf, environ={})


def test_cross_field_rule_names_section_and_source(tmp_path: Path) -> None:
    conf = _write(tmp_path, "segmentation:\n  k_min: 9\n  k_max: 4\n")
    with pytest.raises(
        ConfigError, match=r"'segmentation' from .*env.yaml: .*k_min must be <= k_max"
    ):
        load_settings(conf, environ={})


def test_layering_file_then_env_then_flags(tmp_path: Path) -> None:
    conf = _write(tmp_path, "paths:\n  warehouse: /from/file\n  landing: /landing/file\n")
    env = {"SALESOPT_PATHS__WAREHOUSE": "/from/env", "SALESOPT_FORECAST__HORIZON": "12"}
    settings = load_settings(conf, environ=env, overrides={"paths.landing": "/from/flag"})
    assert settings.paths.warehouse == "/from/env"
    assert settings.paths.landing == "/from/flag"
    assert settings.forecast.horizon == 12


def test_base_file_next_to_environment_file_is_loaded_first(tmp_path: Path) -> None:
    _write(tmp_path, "forecast:\n  horizon: 5\n  frequency: daily\n", "base.yaml")
    env_file = _write(tmp_path, "forecast:\n  horizon: 6\n")
    settings = load_settings(env_file, environ={})
    assert (settings.forecast.horizon, settings.forecast.frequency) == (6, "daily")


def test_bad_env_var_names_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spark.shuffle_partitions.*environment"):
        load_settings(None, environ={"SALESOPT_SPARK__SHUFFLE_PARTITIONS": "-3"})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.paths.warehouse = "/elsewhere"  # type: ignore[misc]


def test_checkpoint_defaults_under_warehouse() -> None:
    settings = load_settings(None, environ={}, overrides={"paths.warehouse": "/lake/wh/"})
    assert settings.paths.checkpoint_dir == "/lake/wh/_checkpoints"


def test_set_flags_parse_yaml_values() -> None:
    assert parse_set_flags(["forecast.horizon=4", "spark.conf={a: b}"]) == {
        "forecast.horizon": 4,
        "spark.conf": {"a": "b"},
    }
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_set_flags(["horizon"])


def test_missing_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "paths: [unclosed\n"), environ={})
