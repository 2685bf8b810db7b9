"""One callback model for both loops (pbrl.callbacks): SB3 callbacks in OfflineAgent.fit, the shared evaluation
callback's rows online and offline, the checkpoint and SIGINT callbacks, and the Progress record on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from pbrl.agents.bc import BC
from pbrl.app import runs
from pbrl.app.config import config_from_dict
from pbrl.app.run_dir import CURVE_FIELDS
from pbrl.callbacks import PbrlCheckpointCallback, StopOnSignal
from pbrl.checkpoint import CheckpointFiles
from pbrl.envs import make_env
from pbrl.envs.evaluation import PbrlEvalCallback, evaluation_row
from pbrl.progress import Progress

SMALL = dict(hidden=(16,), batch_size=16)


class StopAt(BaseCallback):
    """A user's callback: records what it sees and stops training at ``stop_at`` updates."""

    def __init__(self, stop_at: int):
        super().__init__()
        self.stop_at, self.steps, self.losses, self.events = stop_at, [], [], []

    def _on_training_start(self) -> None:
        self.events.append(("start", self.num_timesteps))

    def _on_step(self) -> bool:
        self.steps.append(self.num_timesteps)
        self.losses.append(dict(self.locals["losses"]))
        self.logger.record("user/step", self.num_timesteps)
        return self.num_timesteps < self.stop_at

    def _on_training_end(self) -> None:
        self.events.append(("end", self.num_timesteps))


def test_a_user_callback_stops_offline_training_early_and_sees_the_step_count(reacher_random):
    agent = BC.from_dataset(reacher_random, seed=0, **SMALL)
    cb = StopAt(7)
    info = agent.fit(reacher_random, steps=50, callback=cb, progress=False)
    assert info["steps"] == 7 and agent.num_updates == agent.num_timesteps == 7
    assert cb.steps == list(range(1, 8)) and set(cb.losses[0]) == {"bc_loss"}
    assert cb.events == [("start", 0), ("end", 7)] and cb.model is agent
    assert agent.logger.name_to_value["user/step"] == 7 and agent.get_env() is None
    # a second fit continues the count; a list runs as SB3's CallbackList; plain functions still work
    a, b, seen = StopAt(100), StopAt(10), []
    info = agent.fit(reacher_random, steps=5, callback=[a, b, lambda ag, step, losses: seen.append(step)],
                     progress=False)
    # every callback of the list runs at each step; b's False stops them all (SB3's CallbackList)
    assert a.events == [("start", 7), ("end", 10)] and a.steps == b.steps == seen == [8, 9, 10]
    assert info["steps"] == 3
    with pytest.raises(TypeError, match="BaseCallback"):
        agent.fit(reacher_random, steps=5, callback=3, progress=False)


def test_the_eval_callback_gives_the_same_rows_online_and_offline(reacher_random):
    from stable_baselines3 import SAC

    from pbrl.envs import make_vec_env

    def evaluator():
        return PbrlEvalCallback(make_env("mujoco/Reacher-v5", seed=3), 20, n_eval_episodes=1, seed=3,
                                task="mujoco/Reacher-v5")

    offline, online = evaluator(), evaluator()
    agent = BC.from_dataset(reacher_random, seed=0, **SMALL)
    agent.fit(reacher_random, steps=50, callback=offline, progress=False)
    sac = SAC("MlpPolicy", make_vec_env("mujoco/Reacher-v5", 1, seed=0), learning_starts=10, batch_size=16,
              policy_kwargs={"net_arch": [16]}, seed=0)
    sac.learn(50, callback=online)
    for ev in (offline, online):  # every eval_every steps, and once more at the end
        assert [r["step"] for r in ev.history] == [20, 40, 50]
        assert all(list(r) == list(CURVE_FIELDS) for r in ev.history)
        assert all(r["labels"] == 0 and np.isfinite(r["mean_return"]) for r in ev.history)
    # a row is the evaluation of the policy at that step, whichever loop trained it
    assert offline.history[-1] == evaluation_row(agent, make_env("mujoco/Reacher-v5", seed=3), 1, 3, 50, 0,
                                                 task="mujoco/Reacher-v5")
    assert online.history[-1] == evaluation_row(sac, make_env("mujoco/Reacher-v5", seed=3), 1, 3, 50, 0,
                                                task="mujoco/Reacher-v5")
    # fit's own eval_env= is the same callback
    info = BC.from_dataset(reacher_random, seed=0, **SMALL).fit(reacher_random, steps=50, eval_env=offline.eval_env,
                                                                eval_every=20, n_eval_episodes=1, eval_seed=3,
                                                                progress=False)
    assert [r["step"] for r in info["evaluations"]] == [20, 40, 50] and info["final_eval"]["step"] == 50


def test_checkpoint_and_stop_callbacks_offline(reacher_random, tmp_path):
    agent = BC.from_dataset(reacher_random, seed=0, **SMALL)
    progress = Progress(next_ckpt=4)
    saved = []
    ckpt = PbrlCheckpointCallback(saved.append, 4, progress)
    stop = StopOnSignal(ckpt)

    class RequestAt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 6:
                stop.request()  # what the SIGINT handler does
            return True

    info = agent.fit(reacher_random, steps=50, callback=[ckpt, stop, RequestAt()], progress=False)
    # checkpoints at 4, then the stop at the next update (7) writes one before stopping
    assert saved == [4, 7] and info["steps"] == 7 and stop.stopping
    assert progress.last_ckpt == 7 and progress.next_ckpt == 8
    # a folder instead of a function: the model's own save, every 5 updates from where the agent stands
    files = PbrlCheckpointCallback(tmp_path / "ck", 5, name_prefix="bc")
    agent.fit(reacher_random, steps=10, callback=files, progress=False)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["bc_10_steps", "bc_15_steps"]
    assert BC.load(tmp_path / "ck" / "bc_15_steps").num_updates == 15


#: a checkpoint's progress dict as pbrl wrote it before Progress existed (online, after one resume)
OLD_PROGRESS = {
    "curve": [{"step": 0, "labels": 0, "mean_return": -1.5, "std_return": 0.0, "success_rate": 0.0,
               "normalized_score": None},
              {"step": 200, "labels": 20, "mean_return": 3.25, "std_return": 0.5, "success_rate": 1.0,
               "normalized_score": 0.1}],
    "next_eval": 400, "next_ckpt": 300, "session": 1, "wall_time_s": 0.0, "last_ckpt": 200,
}


def test_progress_round_trips_through_a_checkpoint_including_an_old_format_one(tmp_path):
    files = CheckpointFiles(tmp_path / "checkpoints")
    files.save(200, {"kind": "online", "progress": OLD_PROGRESS})
    p = Progress.from_dict(files.load()["progress"])
    assert p == Progress(curve=OLD_PROGRESS["curve"], next_eval=400, next_ckpt=300, last_ckpt=200, session=1)
    assert p.step == 200 and p.labels_used == 20 and p.best == 3.25 and p.last_eval is p.curve[-1]
    assert p.to_dict() == {**OLD_PROGRESS, "cpu_time_s": 0.0}  # the same keys and values (+ cpu_time_s)
    files.save(300, {"kind": "online", "progress": p.to_dict()})
    assert Progress.from_dict(files.load()["progress"]) == p
    # older still: no session, no last_ckpt (a checkpoint's -1 placeholder reads as none)
    oldest = {k: v for k, v in OLD_PROGRESS.items() if k not in ("session", "last_ckpt")}
    assert Progress.from_dict(oldest).session == 0 and Progress.from_dict(oldest).last_ckpt is None
    assert Progress.from_dict({**oldest, "last_ckpt": -1}).last_ckpt is None
    with pytest.raises(ValueError, match="progress record"):
        Progress.from_dict({"next_eval": 3})


def test_an_offline_run_resumes_from_an_old_format_checkpoint_exactly(tmp_path):
    from pbrl.envs.datasets import collect, save_d4rl

    data = save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=200, seed=0), tmp_path / "r.hdf5")
    cfg = {"kind": "offline", "task": "mujoco/Reacher-v5", "dataset": str(data), "agent": "bc", "steps": 20, "segment_length": 10,
           "checkpoint_every": 10, "eval_every": 10, "n_eval_episodes": 1, "agent_kwargs": {"hidden": [16]}}
    ref, d = tmp_path / "ref", tmp_path / "old"
    runs.train(config_from_dict(cfg), ref, verbose=False)
    runs.train(config_from_dict(cfg), d, verbose=False)
    # make d a run killed after step 10 whose checkpoint an older pbrl wrote (progress without cpu_time_s)
    rd = runs.RunDir(d)
    path = rd.ckpt_dir / "step_0000000010.pt"
    payload = torch.load(path, weights_only=False)
    payload["progress"].pop("cpu_time_s")
    torch.save(payload, path)
    for p in [rd.ckpt_dir / "step_0000000020.pt", rd.ckpt_dir / "agent_0000000020.pt", d / "metrics.json",
              d / "agent.pt", rd.ckpt_dir / "latest.json"]:
        p.unlink()
    rd.write_status("running", step=10, labels=0, checkpoint=10)
    metrics = runs.resume(d, verbose=False)
    assert metrics["steps"] == 20 and rd.status()["state"] == "finished"
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
    assert json.loads((ref / "metrics.json").read_text())["final"] == metrics["final"]
