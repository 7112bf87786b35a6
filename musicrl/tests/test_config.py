"""Saving and reading configs: round trips, and runs written before a default changed."""

import dataclasses
import json

import pytest

from musicrl.config import (
    EARLIER_DEFAULTS,
    Config,
    config_from_overrides,
    load_config,
    read_config_file,
    save_config,
)
from musicrl.errors import MusicRLError


@pytest.mark.parametrize("overrides", [
    {},
    {"policy_dropout": 0.0, "mle_every": 0},
    {"sr": 22050, "hop_length": 512, "n_mels": 32, "kl_schedule": "cosine", "kl_coef_end": 0.05},
    {"quantize": "cover", "batch_size": 16, "value_head": True},
], ids=["default", "earlier", "rates", "misc"])
def test_save_load_round_trip(tmp_path, overrides):
    cfg = config_from_overrides(overrides)
    path = tmp_path / "config.json"
    save_config(cfg, path)
    assert load_config(path) == cfg
    # every field is written, so today's defaults never fill in a saved run's settings
    assert set(json.loads(path.read_text())) == {f.name for f in dataclasses.fields(Config)}


def test_earlier_defaults_are_fields_whose_default_moved():
    for name, value in EARLIER_DEFAULTS.items():
        assert getattr(Config(), name) != value, name
        assert getattr(config_from_overrides({name: value}), name) == value


@pytest.mark.parametrize("missing", sorted(EARLIER_DEFAULTS))
def test_config_written_before_a_field_existed_keeps_the_behaviour_of_its_time(tmp_path, missing):
    saved = config_from_overrides({"mle_every": 3, "policy_dropout": 0.2}).to_dict()
    del saved[missing]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    cfg = load_config(path)
    assert getattr(cfg, missing) == EARLIER_DEFAULTS[missing]
    for other in EARLIER_DEFAULTS.keys() - {missing}:  # fields the file has keep their values
        assert getattr(cfg, other) == saved[other]


def test_other_missing_fields_take_their_defaults(tmp_path):
    saved = Config(kl_coef=0.3).to_dict()
    del saved["entropy_coef"], saved["n_mels"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    cfg = load_config(path)
    assert cfg.entropy_coef == Config().entropy_coef and cfg.n_mels == Config().n_mels
    assert cfg.kl_coef == 0.3


def test_read_config_file_is_unchecked_and_names_the_file(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"kl_coef": 0.5, "not_a_field": 1}')
    assert read_config_file(path) == {"kl_coef": 0.5, "not_a_field": 1}
    path.write_text("[1, 2]")
    with pytest.raises(MusicRLError, match=r"experiment file '.*exp\.json' must hold a JSON object"):
        read_config_file(path, what="experiment file")
    with pytest.raises(MusicRLError, match=r"cannot read config file '.*nothing\.json'"):
        read_config_file(tmp_path / "nothing.json")
