"""Per-task hyperparameter files (issue 29, issue 30 finding 6): one file per registered agent, lookup exact task
> pattern > default, flags / --config / --set above them, provenance in config.json, bad keys stopped with one
line, docs/hyperparameters.md in step with the files."""

import fnmatch
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pbrl.agents.registry import AGENTS, agent_names
from pbrl.cli import app
from pbrl.config_feedback import needs_user_ids
from pbrl.config_resolve import resolve_config
from pbrl.envs import list_tasks
from pbrl.hyperparams import HYPERPARAMS_DIR, check_file, file_path, flatten, load, markdown, read_file

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hyperparameters.md"

IPL_METAWORLD = {"chi2_coeff": 3.0, "expectile": 0.75, "hidden": [256, 256, 256], "target_clipping": False,
                 "replay_weight": 0.0, "pref_batch_size": 16, "segment_crop": 16}


def _a_task(entry: str) -> str | None:
    """A registered task the entry applies to (``None`` for a pattern no installed task matches)."""
    if entry == "default":
        return "mujoco/Hopper-v5"
    if set("*?[") & set(entry):
        hits = [t for t in list_tasks() if fnmatch.fnmatchcase(t, entry)]
        return hits[0] if hits else None
    return entry


def test_every_registered_agent_has_a_packaged_file_and_no_file_is_orphaned():
    names = {p.stem for p in HYPERPARAMS_DIR.glob("*.yml")}
    assert names == set(AGENTS)
    for agent in AGENTS:
        assert "default" in read_file(file_path(agent)), agent


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_every_entry_builds_a_valid_config(agent):
    kind = AGENTS[agent].kind
    entries = read_file(file_path(agent))
    check_file(entries, agent, str(file_path(agent)))
    for entry in entries:
        task = _a_task(entry)
        if task is None or (task.startswith("dmc/") and task not in list_tasks("dmc")):
            continue
        users = {"teacher": "multi_user"} if needs_user_ids(agent) else {}  # VPL learns from several users' labels
        cfg = resolve_config(kind, None, {"agent": agent, "task": task, **users})
        assert entry in cfg.provenance["hyperparams_entries"]
        for key, value in flatten(entries[entry]).items():  # each of the entry's values reaches the config
            top, *rest = key.split(".")
            got = getattr(cfg, top)
            for r in rest:
                got = got[r]
            winner = cfg.provenance["sources"][key]
            if winner.endswith(f"[{entry}]"):
                assert got == value, (agent, entry, key)


def _code_default(agent: str, key: str):
    """What the agent uses for ``key`` when no file gives it: the config dataclass's field default, or the
    agent class's own (offline: the constructed agent's attribute; online: the constructor default)."""
    import dataclasses
    import inspect

    from pbrl.config import OfflineConfig, OnlineConfig

    entry = AGENTS[agent]
    cls = entry.load()
    top, *rest = key.split(".")
    if top != "agent_kwargs":
        conf = OnlineConfig if entry.kind == "online" else OfflineConfig
        return {f.name: f.default for f in dataclasses.fields(conf)}[top]
    name = rest[0]
    if entry.kind == "offline":
        got = getattr(cls(obs_dim=3, act_dim=2), name)
        return list(got) if isinstance(got, tuple) else got
    if name == "unsup_steps":
        return cls.default_unsup_steps
    for klass in cls.__mro__:
        params = inspect.signature(klass.__init__).parameters if "__init__" in klass.__dict__ else {}
        if name in params:
            return params[name].default
    raise AssertionError(f"{agent} has no parameter {name}")


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_default_entries_are_the_code_defaults(agent):
    """A default entry documents the agent's defaults: running with or without the file on a task that no
    other entry names is the same run."""
    for key, value in flatten(read_file(file_path(agent))["default"]).items():
        assert _code_default(agent, key) == value, (agent, key)


def test_lookup_order_exact_over_pattern_over_default(tmp_path):
    f = tmp_path / "ipl.yml"
    f.write_text("default: {segment_length: 10, steps: 7, agent_kwargs: {chi2_coeff: 1.0, expectile: 0.6}}\n"
                 "'metaworld/*': {segment_length: 20, agent_kwargs: {chi2_coeff: 2.0}}\n"
                 "'metaworld/button-*': {agent_kwargs: {chi2_coeff: 2.5}}\n"
                 "metaworld/button-press-v3: {segment_length: 30}\n")
    p = load("ipl", "metaworld/button-press-v3:goal=hidden", f)
    assert p.entries == ("default", "metaworld/*", "metaworld/button-*", "metaworld/button-press-v3")
    assert p.values == {"segment_length": 30, "steps": 7, "agent_kwargs": {"chi2_coeff": 2.5, "expectile": 0.6}}
    assert p.sources["agent_kwargs.chi2_coeff"].endswith("[metaworld/button-*]")
    assert p.sources["agent_kwargs.expectile"].endswith("[default]")
    assert load("ipl", "mujoco/Hopper-v5", f).values["segment_length"] == 10


def test_ipl_on_metaworld_gets_the_authors_metaworld_configuration_not_locomotion():
    """Issue 30, finding 6: IPL on Meta-World ran with its locomotion settings (chi^2 0.5, expectile 0.7,
    2 x 256, clipped values, unlabelled data, 8 pairs of 64-step crops)."""
    from pbrl.agents.ipl import IPL

    cfg = resolve_config("offline", None, {"agent": "ipl", "task": "metaworld/drawer-open-v3"})
    assert {k: cfg.agent_kwargs[k] for k in IPL_METAWORLD} == IPL_METAWORLD
    assert cfg.segment_length == 25  # the authors' feedback segments, cropped to 16
    agent = IPL(obs_dim=39, act_dim=4, **cfg.agent_kwargs)
    assert (agent.chi2_coeff, agent.expectile, tuple(agent.hidden), agent.target_clipping, agent.replay_weight,
            agent.pref_batch_size, agent.segment_crop) == (3.0, 0.75, (256, 256, 256), False, 0.0, 16, 16)
    loco = resolve_config("offline", None, {"agent": "ipl", "task": "mujoco/Hopper-v5"})
    assert (loco.agent_kwargs["chi2_coeff"], loco.agent_kwargs["expectile"], loco.segment_length) == (0.5, 0.7, 50)
    off = resolve_config("offline", None, {"agent": "ipl", "task": "metaworld/drawer-open-v3"}, hyperparams=False)
    assert off.agent_kwargs == {} and off.provenance["hyperparams_file"] is None


def test_config_file_flags_and_set_override_the_file_and_provenance_says_so(tmp_path):
    conf = tmp_path / "run.yaml"
    conf.write_text("kind: offline\nagent: ipl\nagent_kwargs: {expectile: 0.8}\n")
    cfg = resolve_config("offline", conf, {"task": "metaworld/drawer-open-v3", "segment_length": 20},
                         ["agent_kwargs.segment_crop=8"])
    assert (cfg.agent_kwargs["expectile"], cfg.segment_length, cfg.agent_kwargs["segment_crop"]) == (0.8, 20, 8)
    src = cfg.provenance["sources"]
    assert src["agent_kwargs.expectile"] == f"config file {conf}"
    assert src["segment_length"] == "flag --segment-length"
    assert src["agent_kwargs.segment_crop"] == "--set"
    assert src["agent_kwargs.chi2_coeff"] == "pbrl/hyperparams/ipl.yml [metaworld/*]"
    assert src["steps"] == "default"
    assert cfg.provenance["hyperparams_entries"] == ["default", "metaworld/*"]


def test_online_metaworld_entry_gives_b_prefs_schedule():
    cfg = resolve_config("online", None, {"agent": "pebble", "task": "metaworld/button-press-v3"})
    assert (cfg.total_timesteps, cfg.feedback_every, cfg.total_feedback, cfg.feedback_per_session) == \
        (1_000_000, 5000, 10_000, 50)
    assert cfg.agent_kwargs["fit_kwargs"] == {"epochs": 10}
    assert cfg.provenance["sources"]["total_feedback"] == "pbrl/hyperparams/pebble.yml [metaworld/button-press-v3]"
    flag = resolve_config("online", None, {"agent": "pebble", "task": "metaworld/button-press-v3",
                                           "total_timesteps": 3000})
    assert flag.total_timesteps == 3000 and flag.provenance["sources"]["total_timesteps"] == "flag --total-timesteps"


@pytest.mark.parametrize("text, needles", [
    ("default:\n  agent_kwargs: {chi2_coef: 1.0}\n", ["agent_kwargs.chi2_coef", "did you mean 'agent_kwargs.chi2_coeff'"]),
    ("'metaworld/*':\n  segment_lenght: 10\n", ["'segment_lenght'", "did you mean 'segment_length'"]),
    ("metaworld/buton-press-v3: {segment_length: 10}\n", ["entry key", "did you mean 'metaworld/button-press-v3'"]),
    ("default: {seed: 3}\n", ["names the run", "--seed"]),
    ("default: [1, 2]\n", ["must be a mapping"]),
])
def test_a_bad_hyperparameter_file_stops_the_cli_with_one_line_and_exit_2(tmp_path, text, needles):
    f = tmp_path / "bad.yml"
    f.write_text(text)
    d = tmp_path / "run"
    res = runner.invoke(app, ["train", "offline", "--agent", "ipl", "--task", "mujoco/Reacher-v5", "--steps", "5",
                              "--hyperparams", str(f), "-o", str(d)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(f) in " ".join(res.output.split()), res.output
    for n in needles:
        assert n in " ".join(res.output.split()), res.output
    assert not d.exists()


def test_cli_run_records_provenance_and_resume_reads_it(tmp_path):
    from pbrl.envs.datasets import collect, save_d4rl
    from pbrl.runs import RunDir

    data = tmp_path / "reacher.hdf5"
    save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=200, seed=0), data)
    d = tmp_path / "run"
    args = ["train", "offline", "--agent", "ipl", "--task", "mujoco/Reacher-v5", "--dataset", str(data),
            "--steps", "4", "--eval-every", "2", "--checkpoint-every", "2", "--n-eval-episodes", "1",
            "--total-feedback", "10", "--segment-length", "10", "--quiet", "-o", str(d)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "pbrl/hyperparams/ipl.yml [default]" in res.output
    saved = json.loads((d / "config.json").read_text())
    assert saved["agent_kwargs"]["chi2_coeff"] == 0.5
    assert saved["provenance"]["sources"]["agent_kwargs.chi2_coeff"] == "pbrl/hyperparams/ipl.yml [default]"
    assert saved["provenance"]["sources"]["segment_length"] == "flag --segment-length"
    cfg = RunDir(d).config()  # what --resume reads: provenance kept, not taken for a config key
    assert cfg.provenance == saved["provenance"] and "provenance" not in cfg.to_dict()
    res = runner.invoke(app, ["train", "--resume", str(d), "--quiet"])
    assert res.exit_code == 0, res.output


def test_docs_hold_the_generated_table_of_every_file():
    """docs/hyperparameters.md and the files cannot disagree: its per-agent blocks are :func:`markdown`'s
    output (rewrite them with ``python -m pbrl.hyperparams --write-docs``)."""
    text = DOCS.read_text()
    for agent in agent_names():
        m = re.search(rf"<!-- hyperparams:{agent} -->\n(.*?)\n<!-- /hyperparams:{agent} -->", text, re.S)
        assert m is not None, f"docs/hyperparameters.md has no block for {agent}"
        assert m.group(1).strip() == markdown(agent).strip(), f"{agent}: run python -m pbrl.hyperparams --write-docs"


def test_hyperparams_and_no_hyperparams_exclude_each_other(tmp_path):
    d = tmp_path / "run"
    res = runner.invoke(app, ["train", "offline", "--agent", "ipl", "--hyperparams", str(file_path("ipl")),
                              "--no-hyperparams", "-o", str(d)])
    assert res.exit_code == 2 and "exclude each other" in res.output and not d.exists()


def test_sweep_points_start_from_the_files_when_asked():
    from pbrl.config import config_from_dict
    from pbrl.sweep import expand_grid

    base = {"kind": "offline", "steps": 10, "agent_kwargs": {"segment_crop": 8}}
    pts = expand_grid(base, tasks=["metaworld/drawer-open-v3", "mujoco/Hopper-v5"], agents=["ipl"], seeds=[0, 1],
                      hyperparams=True)
    mw = [p for p in pts if "metaworld" in p.name]
    loco = [p for p in pts if "Hopper" in p.name]
    assert all(p.config["agent_kwargs"]["chi2_coeff"] == 3.0 and p.config["agent_kwargs"]["segment_crop"] == 8
               for p in mw)
    assert all(p.config["agent_kwargs"] == {"segment_crop": 8} for p in loco)  # default entry = code defaults
    prov = mw[0].config["provenance"]
    assert prov["sources"]["agent_kwargs.chi2_coeff"] == "pbrl/hyperparams/ipl.yml [metaworld/*]"
    assert prov["sources"]["agent_kwargs.segment_crop"].startswith("sweep base")
    assert prov["sources"]["task"] == "sweep axis" and prov["sources"]["teacher"] == "default"
    assert config_from_dict(dict(mw[0].config)).provenance == prov
    plain = expand_grid(base, tasks=["metaworld/drawer-open-v3"], agents=["ipl"])
    assert plain[0].config["agent_kwargs"] == {"segment_crop": 8} and "provenance" not in plain[0].config
