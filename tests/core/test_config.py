"""pbrl.app.config: configs from dicts, files and flags; every bad key/value stops with a message naming it."""

import json

import pytest

from pbrl.agents.registry import agent_names
from pbrl.app.config import OfflineConfig, OnlineConfig, config_from_dict, load_config, parse_overrides


def test_defaults_validate_and_round_trip(tmp_path):
    cfg = config_from_dict({"task": "mujoco/Hopper-v5", "total_feedback": 200, "learner_kwargs": {"batch_size": 64}})
    assert isinstance(cfg, OnlineConfig) and cfg.total_feedback == 200 and cfg.agent == "pebble"
    path = cfg.save(tmp_path / "config.json")
    again = load_config(path)
    assert again == cfg
    off = config_from_dict({"kind": "offline", "agent": "ipl", "steps": 100})
    assert isinstance(off, OfflineConfig) and off.to_dict()["kind"] == "offline"


def test_yaml_file_and_flag_overrides(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("kind: online\nagent: pref_ppo\ntotal_timesteps: 1e4\nlearner_kwargs:\n  n_steps: 256\n")
    over = parse_overrides(["total_feedback=40", "learner_kwargs.batch_size=32", "seed=3"])
    assert over == {"total_feedback": 40, "learner_kwargs": {"batch_size": 32}, "seed": 3}
    cfg = load_config(p, over)
    assert cfg.agent == "pref_ppo" and cfg.total_timesteps == 10_000 and cfg.seed == 3
    assert cfg.learner_kwargs == {"n_steps": 256, "batch_size": 32}


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"total_feedbak": 10}, r"unknown config key 'total_feedbak'.*did you mean 'total_feedback'.*allowed keys: agent, "),
        ({"total_feedback": -3}, r"total_feedback must be >= 1, got -3"),
        ({"total_timesteps": -1}, r"total_timesteps must be >= 1, got -1"),
        ({"agent": "pebbel"}, r"unknown agent 'pebbel'.*allowed values: " + ", ".join(sorted(agent_names("online")))),
        ({"agent": "ipl"}, r"unknown agent 'ipl'.*allowed values: " + ", ".join(sorted(agent_names("online")))),
        ({"teacher": "genius"}, r"unknown teacher 'genius'.*allowed values: equal, heron, intransitive, last_step, mistake, myopic, oracle, rating, scripted"),
        ({"teacher": "heron", "teacher_kwargs": {"order": ["reward_speed"]}}, r"teacher 'heron': unknown reward factor"),
        ({"teacher": "heron", "teacher_kwargs": {"beta": 1.0}}, r"unknown key 'beta' in teacher_kwargs for teacher 'heron'"),
        ({"selector": "best"}, r"unknown query selector 'best'.*allowed values: disagreement"),
        ({"selector": "gated_disagreement", "selector_kwargs": {"epsilon": 2}},
         r"bad selector_kwargs for query selector 'gated_disagreement': epsilon must be a number in \[0, 1\)"),
        ({"selector": "uniform", "selector_kwargs": {"epsilon": 0.1}}, r"bad selector_kwargs .*'uniform' selector takes no options"),
        ({"task": "mujoco/Cheetah-v5"}, r"unknown task id 'mujoco/Cheetah-v5'"),
        ({"segment_length": "long"}, r"segment_length must be an integer, got 'long'"),
        ({"learner_kwargs": {"batchsize": 64}}, r"unknown key 'batchsize' in learner_kwargs for SAC; allowed keys: .*batch_size"),
        ({"teacher_kwargs": {"bta": 1.0}}, r"unknown key 'bta' in teacher_kwargs.*allowed keys: beta"),
        ({"max_episode_steps": 10, "segment_length": 50}, r"max_episode_steps \(10\) must be >= segment_length"),
        ({"kind": "batch"}, r"allowed values: offline, online"),
        ({"agent": "qpa", "agent_kwargs": {"her_ration": 0.5}}, r"unknown key 'her_ration' in agent_kwargs for agent 'qpa'; allowed keys: .*her_ratio"),
        ({"agent_kwargs": {"seed": 3}}, r"agent_kwargs must not set 'seed'; use the config key 'seed'"),
    ],
)
def test_online_errors_name_the_key(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        config_from_dict(data)


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"agent": "pebble"}, r"unknown agent 'pebble' for offline training \(config key 'agent'\); allowed values: " + ", ".join(sorted(agent_names("offline")))),
        ({"total_feedback": -3}, r"total_feedback must be >= 1, got -3"),
        ({"dataset": "/nonexistent/hopper.hdf5"}, r"dataset file '/nonexistent/hopper.hdf5' does not exist"),
        ({"total_timesteps": 5}, r"unknown config key 'total_timesteps' for an offline run; allowed keys: .*steps"),
        ({"teacher": "heron"}, r"teacher 'heron' compares reward factors, which only online runs record"),
    ],
)
def test_offline_errors_name_the_key(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        config_from_dict({"kind": "offline", **data})


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(bad)
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(lst)
    with pytest.raises(ValueError, match="must look like key=value"):
        parse_overrides(["total_feedback"])
    with pytest.raises(ValueError, match="says kind 'offline' but an online run"):
        config_from_dict({"kind": "offline"}, kind="online")


def test_the_selector_defaults_to_the_agents_own():
    """QPA queries uniformly (its paper); the config's default used to force ``disagreement`` on it."""
    qpa = config_from_dict({"agent": "qpa"})
    assert qpa.selector == "uniform" and qpa.to_dict()["selector"] == "uniform"
    assert config_from_dict({"agent": "pebble"}).selector == "disagreement"
    assert config_from_dict({"agent": "qpa", "selector": "entropy"}).selector == "entropy"
    assert config_from_dict(qpa.to_dict()).to_dict() == qpa.to_dict()


def test_the_gated_and_thompson_selectors_are_config_choices():
    from pbrl.queries import GatedSelector, make_selector

    cfg = config_from_dict({"selector": "gated_thompson", "selector_kwargs": {"epsilon": 0.05, "threshold": 0.2}})
    assert cfg.to_dict()["selector_kwargs"] == {"epsilon": 0.05, "threshold": 0.2}
    sel = make_selector(cfg.selector, **cfg.selector_kwargs)
    assert isinstance(sel, GatedSelector) and sel.epsilon == 0.05 and sel.inner.threshold == 0.2
    assert config_from_dict({"selector": "thompson"}).selector == "thompson"
    assert parse_overrides(["selector_kwargs.epsilon=0.1"]) == {"selector_kwargs": {"epsilon": 0.1}}


def test_an_offline_config_can_pin_its_dataset_file_by_sha256(tmp_path):
    from pbrl.io import sha256_of

    path = tmp_path / "d.hdf5"
    path.write_bytes(b"first build")
    digest = sha256_of(path)
    cfg = config_from_dict({"kind": "offline", "dataset": str(path), "dataset_sha256": digest})
    assert cfg.dataset_sha256 == digest
    path.write_bytes(b"a rebuilt file at the same path")  # another size: the remembered digest is not reused
    with pytest.raises(ValueError, match=r"has sha256 .*not the config's dataset_sha256 .*rebuilt or replaced"):
        config_from_dict({"kind": "offline", "dataset": str(path), "dataset_sha256": digest})
    with pytest.raises(ValueError, match="64-digit lower-case hex"):
        config_from_dict({"kind": "offline", "dataset": str(path), "dataset_sha256": "abc"})
    with pytest.raises(ValueError, match="dataset must name an existing file"):
        config_from_dict({"kind": "offline", "dataset_sha256": digest})


def test_a_digest_given_with_set_stays_text_even_when_it_reads_as_a_number():
    digits, exponent = "0" * 63 + "7", "1e5" + "0" * 61  # YAML reads these as the int 7 and the float 1e+61
    assert parse_overrides([f"dataset_sha256={digits}", "seed=3"]) == {"dataset_sha256": digits, "seed": 3}
    assert parse_overrides([f"dataset_sha256={exponent}"]) == {"dataset_sha256": exponent}
    assert parse_overrides(["dataset_sha256="]) == {"dataset_sha256": None}
