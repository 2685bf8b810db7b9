"""Run configurations for ``pbrl train``: dataclasses, loaded from flags or a YAML/JSON file, validated
before any work starts.

Two kinds:

* :class:`OnlineConfig`: an online PbRL agent (PEBBLE, PrefPPO, SURF, QPA, RUNE) learning on a live task
  while a teacher labels segment pairs (or, ``teacher: rating`` with ``n_classes``, rates single segments);
* :class:`OfflineConfig`: an offline agent (MR+IQL, IQL, IPL, CPL, CPL-BC, OPPO, PEARL, BC) trained from a fixed
  dataset whose segment pairs a teacher labels once.

A config file is a YAML or JSON mapping; its optional ``kind`` key (``online`` / ``offline``) picks the
class, and every other key must be a field of that class. Validation raises one ``ValueError`` naming the
bad key and the allowed keys or values, e.g.::

    unknown agent 'pebbel' for online training; allowed values: hprior, pebble, pref_ppo, qpa, rime, rune, sac, surf
    unknown config key 'total_feedbak' for an online run; allowed keys: agent, checkpoint_every, ...
    total_feedback must be >= 1, got -3
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from pbrl.agents.registry import agent_names, get_agent, get_entry
from pbrl.app.config_feedback import check_feedback as _check_feedback
from pbrl.app.config_feedback import check_kwargs
from pbrl.app.config_feedback import check_labels_file as _check_labels_file
from pbrl.app.config_feedback import check_teacher_kwargs as _check_teacher_kwargs
from pbrl.envs.collect import POLICY_KINDS, collect
from pbrl.envs.registry import check_task
from pbrl.io import sha256_of
from pbrl.online.ratings import RATING_SELECTORS
from pbrl.preferences import atomic_write
from pbrl.queries import ENSEMBLE_SELECTORS as SELECTORS
from pbrl.queries import make_selector
from pbrl.reward_models import RewardEnsemble
from pbrl.teachers import TEACHER_PRESETS, RatingTeacher
from pbrl.validation import check_int

__all__ = [
    "OnlineConfig",
    "OfflineConfig",
    "RunConfig",
    "config_from_dict",
    "load_config",
    "parse_overrides",
    "agent_class",
    "allowed_teachers",
    "agent_help",
    "teacher_tag",
]

def agent_help(kind: str) -> str:
    """``"a | b | c"``: the registered agents of ``kind``, for help texts."""
    return " | ".join(agent_names(kind))


def allowed_teachers(kind: str = "online") -> list[str]:
    """Teacher names a run accepts: the B-Pref presets, ``scripted`` (explicit ``teacher_kwargs``), ``rating``
    (a :class:`~pbrl.teachers.RatingTeacher`, ``n_classes`` classes) and ``heron`` (a
    :class:`~pbrl.teachers.HierarchicalTeacher` over the env's reward factors, online only); offline runs also
    ``regret`` (CPL's oracle: regret under the dataset's expert critic, :mod:`pbrl.envs.regret`) and
    ``multi_user`` (a population of scripted users, :class:`~pbrl.multi_user.MultiUserTeacher`, for VPL), offline
    only. ``intransitive`` (a population of raters with different objectives,
    :class:`~pbrl.teachers_mixture.PopulationTeacher`) and ``last_step`` (a non-Markovian teacher) serve both."""
    offline = ["regret", "multi_user"] if kind == "offline" else []
    return sorted([*TEACHER_PRESETS, "scripted", "rating", "heron", "intransitive", "last_step", *offline])


def agent_class(kind: str, name: str):
    """Import and return the agent class registered as ``name`` for ``kind`` (``online``/``offline``)."""
    return get_agent(name, kind)


def _check_choice(key: str, value: Any, allowed, what: str, where: str = "") -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(
            f"unknown {what} '{value}'{where} (config key '{key}'){hint}; allowed values: {', '.join(sorted(allowed))}"
        )


def _check_selector_kwargs(selector: str, kwargs: Any) -> None:
    """``selector_kwargs`` must build the selector: one ``ValueError`` naming the bad option otherwise."""
    if not isinstance(kwargs, dict):
        raise ValueError(f"selector_kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
    if not kwargs:
        return
    try:
        make_selector(selector, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad selector_kwargs for query selector '{selector}': {e}") from None


def _init_params(cls) -> set[str] | None:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up the MRO; ``None`` if open-ended."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind not in
                  (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return names
    return None


_ONLINE_SET_BY_CONFIG = {
    "task_id_or_env": "task", "teacher": "teacher", "total_feedback": "total_feedback",
    "feedback_per_session": "feedback_per_session", "feedback_every": "feedback_every",
    "segment_length": "segment_length", "selector": "selector", "seed": "seed",
    "learner_kwargs": "learner_kwargs", "reward_model_kwargs": "reward_model_kwargs",
}


def teacher_tag(teacher: str, n_classes: int | None = None) -> str:
    """How run names and reports show a teacher: its name, or ``rating-n<classes>`` for the rating teacher
    (``n_classes`` ``None``: the teacher's default)."""
    if teacher != "rating":
        return str(teacher)

    n = n_classes or inspect.signature(RatingTeacher).parameters["n_classes"].default
    return f"rating-n{n}"


@dataclass
class _Common:
    """Shared by both configs: ``to_dict`` and ``save``; each subclass defines ``validate()``, which
    checks every field and raises one ``ValueError`` naming the bad key and what is allowed."""

    #: where each value came from (:func:`pbrl.app.config_resolve.resolve_config`); not a field: ``to_dict`` and
    #: comparisons leave it out, ``save`` writes it into ``config.json``
    provenance = None  # a dict when set; no annotation, so that it is not a dataclass field

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict, with ``kind`` (without ``provenance``)."""
        return {"kind": self.kind, **asdict(self)}

    def teacher_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`pbrl.teachers.make_teacher` besides the seed: ``teacher_kwargs``, plus
        ``n_classes`` for the rating teacher."""
        extra = {"n_classes": self.n_classes} if self.n_classes is not None else {}
        return {**self.teacher_kwargs, **extra}

    def teacher_tag(self) -> str:
        """The teacher as run-directory names show it: its name, ``rating-n<classes>`` for ratings."""
        return teacher_tag(self.teacher, self.n_classes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as JSON atomically."""
        path = Path(path)
        data = self.to_dict()
        if self.provenance:
            data["provenance"] = self.provenance
        with atomic_write(path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        return path


@dataclass
class OnlineConfig(_Common):
    """An online run (``pbrl train online``).

    Attributes:
        task: task id (``pbrl tasks``), default ``mujoco/HalfCheetah-v5``.
        agent: an online agent of :data:`pbrl.agents.registry.AGENTS` (default ``pebble``).
        teacher: B-Pref preset (``oracle, stoc, mistake, skip, myopic, equal``), ``scripted``, or ``rating``
            (:class:`~pbrl.teachers.RatingTeacher`: single segments rated into ``n_classes`` classes; the agent
            must learn from ratings, e.g. ``pebble``, and the selector be ``uniform`` or ``disagreement``).
        teacher_kwargs: overrides of the teacher's parameters (``beta``, ``gamma``, ``eps``, ...; for
            ``rating``: ``bins``, ``eps_mistake``, ``mistake``, ``eps_skip``, ``gamma``; for ``heron``:
            ``order`` (factor names, most important first), ``sigma``).
        n_classes: the rating teacher's number of classes (``None``: its default, 3); only with ``rating``.
        total_timesteps: env steps of the whole run (> 0).
        total_feedback: label budget: queries the teacher may answer (>= 1).
        feedback_per_session: queries asked at each feedback session (> 0).
        feedback_every: env steps between feedback sessions (> 0).
        segment_length: steps per segment H (> 0).
        selector: query selection (``uniform``, ``disagreement``, ``entropy``, ``kcenter``, ...); ``None``
            (default): the agent's own (``disagreement``; QPA's ``uniform``), written into the saved config.
        selector_kwargs: options of the selector (:func:`pbrl.queries.make_selector`), e.g. ``{"epsilon": 0.05}``
            for a gated selector or ``{"threshold": 0.2}`` for ``thompson``.
        seed: seed of everything in the run.
        checkpoint_every: env steps between checkpoints (> 0); the checkpoint is taken at the first
            rollout boundary at or after each multiple.
        eval_every: env steps between evaluations of the policy on the true reward (> 0).
        n_eval_episodes: episodes per evaluation (> 0).
        max_episode_steps: shorter time limit for quick runs (``None``: the task's own).
        learner_kwargs: keyword arguments of the SB3 learner (SAC, or PPO for ``pref_ppo``).
        reward_model_kwargs: keyword arguments of the reward model.
        agent_kwargs: further keyword arguments of the agent class.
        torch_threads: ``torch.set_num_threads`` for the run (1 gives reproducible numbers).
    """

    task: str = "mujoco/HalfCheetah-v5"
    agent: str = "pebble"
    teacher: str = "oracle"
    teacher_kwargs: dict = field(default_factory=dict)
    n_classes: int | None = None
    total_timesteps: int = 100_000
    total_feedback: int = 1000
    feedback_per_session: int = 100
    feedback_every: int = 10_000
    segment_length: int = 50
    selector: str | None = None
    selector_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    checkpoint_every: int = 10_000
    eval_every: int = 10_000
    n_eval_episodes: int = 5
    max_episode_steps: int | None = None
    learner_kwargs: dict = field(default_factory=dict)
    reward_model_kwargs: dict = field(default_factory=dict)
    agent_kwargs: dict = field(default_factory=dict)
    torch_threads: int = 1

    kind = "online"

    def validate(self) -> OnlineConfig:
        check_task(self.task)
        _check_choice("agent", self.agent, agent_names("online"), "agent", " for online training")
        _check_choice("teacher", self.teacher, allowed_teachers(), "teacher")
        if self.selector is None:  # the agent's own default (QPA queries uniformly from its recent episodes)

            self.selector = get_agent(self.agent, "online").default_selector
        _check_choice("selector", self.selector, SELECTORS, "query selector")
        _check_selector_kwargs(self.selector, self.selector_kwargs)
        for k in ("total_timesteps", "feedback_per_session", "feedback_every", "segment_length",
                  "checkpoint_every", "eval_every", "n_eval_episodes", "torch_threads"):
            check_int(k, getattr(self, k), 1)

        # agents that learn from labels need a budget; SAC on the true reward ignores it
        check_int("total_feedback", self.total_feedback, 1 if get_entry(self.agent, "online").needs_preferences else 0)
        check_int("seed", self.seed, 0)
        if self.max_episode_steps is not None:
            check_int("max_episode_steps", self.max_episode_steps, 1)
            if self.max_episode_steps < self.segment_length:
                raise ValueError(
                    f"max_episode_steps ({self.max_episode_steps}) must be >= segment_length ({self.segment_length})"
                )
        _check_teacher_kwargs(self.teacher, self.teacher_kwargs, self.n_classes)
        _check_feedback(self.teacher, "online", self.agent)
        if self.teacher == "rating":
            _check_choice("selector", self.selector, RATING_SELECTORS, "query selector", " for rating queries")
        import stable_baselines3 as sb3

        learner = getattr(sb3, get_entry(self.agent, "online").learner or "SAC")
        check_kwargs("learner_kwargs", self.learner_kwargs, learner.__init__, f"{learner.__name__}")

        check_kwargs("reward_model_kwargs", self.reward_model_kwargs, RewardEnsemble.__init__, "RewardEnsemble")
        if not isinstance(self.agent_kwargs, dict):
            raise ValueError(f"agent_kwargs must be a mapping, got {type(self.agent_kwargs).__name__}")
        for k in self.agent_kwargs:
            if k in _ONLINE_SET_BY_CONFIG:
                raise ValueError(f"agent_kwargs must not set '{k}'; use the config key '{_ONLINE_SET_BY_CONFIG[k]}'")
        try:
            allowed = _init_params(agent_class("online", self.agent))
        except ValueError:
            allowed = None  # not installed: the agent's own constructor reports it
        if allowed is not None:
            allowed -= set(_ONLINE_SET_BY_CONFIG)
            for k in self.agent_kwargs:
                if k not in allowed:
                    raise ValueError(f"unknown key '{k}' in agent_kwargs for agent '{self.agent}'; "
                                     f"allowed keys: {', '.join(sorted(allowed))}")
        return self


@dataclass
class OfflineConfig(_Common):
    """An offline run (``pbrl train offline``).

    Attributes:
        task: task id the dataset comes from (evaluation runs on it).
        dataset: a D4RL-style ``.hdf5`` path or a local Minari id; ``None`` collects ``collect_steps``
            steps with ``collect_policy`` first (seeded by ``seed``).
        dataset_sha256: the SHA-256 the ``dataset`` file must have (:func:`pbrl.io.sha256_of`), or ``None``
            to take the file as it is. The benchmarks set it, so that a run resumed after its dataset file
            was rebuilt at the same path stops before any work instead of mixing the two datasets.
        agent: an offline agent of :data:`pbrl.agents.registry.AGENTS` (default ``mriql``).
        teacher, teacher_kwargs, n_classes: as for online runs (``rating``: the agent must learn from
            ratings, ``mriql``).
        labels: a label file to learn from instead of asking the teacher: a preference dataset or a rating
            dataset (``.h5``, e.g. exported from the labelling page); ``None`` labels ``total_feedback``
            queries with the teacher.
        total_feedback: segment pairs (or, for ``rating``, single segments) the teacher labels (> 0).
        segment_length: steps per segment H.
        stratified: stratified pair sampling over the dataset's returns.
        steps: gradient updates (> 0).
        seed, checkpoint_every (updates), eval_every (updates), n_eval_episodes, torch_threads: as online.
        agent_kwargs: hyperparameters of the agent class (``hidden``, ``lr``, ``batch_size``, ...).
        collect_policy, collect_steps: how to make a dataset when ``dataset`` is ``None``
            (``collect_policy``: ``random``, ``scripted`` (Meta-World), ``medium``, ``expert``, ...).
        collect_kwargs: further arguments of ``pbrl.envs.datasets.collect`` (e.g. ``noise: [0.1, 0.5]``).
    """

    task: str = "mujoco/Hopper-v5"
    dataset: str | None = None
    dataset_sha256: str | None = None
    agent: str = "mriql"
    teacher: str = "oracle"
    teacher_kwargs: dict = field(default_factory=dict)
    n_classes: int | None = None
    labels: str | None = None
    total_feedback: int = 500
    segment_length: int = 50
    stratified: bool = False
    steps: int = 10_000
    seed: int = 0
    checkpoint_every: int = 2_000
    eval_every: int = 2_000
    n_eval_episodes: int = 5
    agent_kwargs: dict = field(default_factory=dict)
    collect_policy: str = "random"
    collect_steps: int = 10_000
    collect_kwargs: dict = field(default_factory=dict)
    torch_threads: int = 1

    kind = "offline"

    def validate(self) -> OfflineConfig:
        check_task(self.task)
        _check_choice("agent", self.agent, agent_names("offline"), "agent", " for offline training")
        _check_choice("teacher", self.teacher, allowed_teachers("offline"), "teacher")
        if self.teacher == "heron" and self.labels is None:
            raise ValueError("teacher 'heron' compares reward factors, which only online runs record (offline "
                             "datasets carry none); use it with `pbrl train online` or choose another teacher")
        for k in ("total_feedback", "segment_length", "steps", "checkpoint_every", "eval_every",
                  "n_eval_episodes", "collect_steps", "torch_threads"):
            check_int(k, getattr(self, k), 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.stratified, bool):
            raise ValueError(f"stratified must be true or false, got {self.stratified!r}")
        if self.dataset is not None:
            if not isinstance(self.dataset, str):
                raise ValueError(f"dataset must be a path or a Minari id string, got {self.dataset!r}")
            if self.dataset.endswith((".hdf5", ".h5")) and not Path(self.dataset).exists():
                raise ValueError(f"dataset file '{self.dataset}' does not exist; give an existing .hdf5 path")
        self._check_dataset_hash()
        _check_teacher_kwargs(self.teacher, self.teacher_kwargs, self.n_classes)
        if self.labels is not None:
            _check_labels_file(self.labels, self.agent)
        else:
            _check_feedback(self.teacher, "offline", self.agent)
        if not isinstance(self.agent_kwargs, dict):
            raise ValueError(f"agent_kwargs must be a mapping, got {type(self.agent_kwargs).__name__}")
        if self.dataset is None:
            _check_choice("collect_policy", self.collect_policy, POLICY_KINDS, "collection policy")
            for k in ("task_id", "policy", "n_steps", "seed"):
                if k in self.collect_kwargs:
                    raise ValueError(f"collect_kwargs must not set '{k}'; use the config keys task, "
                                     "collect_policy, collect_steps and seed")
            check_kwargs("collect_kwargs", self.collect_kwargs, collect, "pbrl.envs.datasets.collect")
        try:
            cls = agent_class("offline", self.agent)
        except ValueError:
            cls = None  # not installed yet: the run fails at construction with the agent's own message
        if cls is not None:
            allowed = _init_params(cls)
            if allowed is not None:
                allowed -= {"obs_dim", "act_dim"}  # sized from the dataset
                for k in self.agent_kwargs:
                    if k == "seed":
                        raise ValueError("agent_kwargs must not set 'seed'; use the config key 'seed'")
                    if k not in allowed:
                        close = difflib.get_close_matches(k, sorted(allowed), n=1)
                        hint = f" (did you mean '{close[0]}'?)" if close else ""
                        raise ValueError(f"unknown key '{k}' in agent_kwargs for agent '{self.agent}'{hint}; "
                                         f"allowed keys: {', '.join(sorted(allowed))}")
        return self


    def _check_dataset_hash(self) -> None:
        want = self.dataset_sha256
        if want is None:
            return
        if not (isinstance(want, str) and len(want) == 64 and all(c in "0123456789abcdef" for c in want)):
            raise ValueError(f"dataset_sha256 must be a 64-digit lower-case hex SHA-256, got {want!r}")
        if self.dataset is None or not Path(self.dataset).is_file():
            raise ValueError("dataset_sha256 is set, so dataset must name an existing file, got "
                             f"{self.dataset!r}")
        have = sha256_of(self.dataset)
        if have != want:
            raise ValueError(f"dataset file '{self.dataset}' has sha256 {have[:12]}..., not the config's "
                             f"dataset_sha256 {want[:12]}...: it was rebuilt or replaced since this config was "
                             "made; start new runs on it (another run directory or --out), or restore the file")


#: a run's validated config: an :class:`OnlineConfig` or an :class:`OfflineConfig`
RunConfig = OnlineConfig | OfflineConfig


def _an(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


_CLASSES = {"online": OnlineConfig, "offline": OfflineConfig}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Light coercion of file/flag values: '3' -> 3 for int fields, 1e5 (float) -> 100000 when integral."""
    text = str(hint)
    if "int" in text and "float" not in text and isinstance(value, float) and value.is_integer():
        return int(value)
    if "int" in text and isinstance(value, str):
        try:
            return int(float(value)) if float(value).is_integer() else value
        except ValueError:
            return value
    return value


def config_from_dict(data: dict[str, Any], kind: str | None = None) -> RunConfig:
    """Build and validate a config from a mapping.

    ``kind`` (``"online"`` / ``"offline"``) may come from the argument or the mapping's ``kind`` key.
    Unknown keys, bad values and unknown agents/teachers/tasks raise one ``ValueError`` naming the key and
    the allowed keys or values.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    data = dict(data)
    provenance = data.pop("provenance", None)  # written by pbrl train into config.json; not a config key
    file_kind = data.pop("kind", None)
    kind = kind or file_kind or "online"
    if file_kind is not None and file_kind != kind:
        raise ValueError(f"the config says kind '{file_kind}' but {_an(kind)} {kind} run was asked for")
    if kind not in _CLASSES:
        raise ValueError(f"unknown config key value kind='{kind}'; allowed values: offline, online")
    cls = _CLASSES[kind]
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            close = difflib.get_close_matches(k, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown config key '{k}' for {_an(kind)} {kind} run{hint}; allowed keys: {', '.join(sorted(names))}")
    hints = get_type_hints(cls)
    data = {k: _coerce(k, v, hints.get(k)) for k, v in data.items()}
    for k in ("teacher_kwargs", "learner_kwargs", "reward_model_kwargs", "agent_kwargs", "collect_kwargs"):
        if k in data and data[k] is None:
            data[k] = {}
    cfg = cls(**data).validate()
    if isinstance(provenance, dict):
        cfg.provenance = provenance
    return cfg


def _read_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"config file '{path}' does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file '{path}' is not valid JSON: {e}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"config file '{path}' is not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config file '{path}' must hold a mapping of keys to values, got {type(data).__name__}")
    return data


#: override keys whose values are always strings, though they can read as YAML numbers (a hex digest of
#: digits only, or one like ``1e5...``): :func:`parse_overrides` keeps their text as given
STRING_OVERRIDES = ("dataset_sha256",)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` flags (values read as YAML: ``3``, ``1e-3``, ``true``, ``[64, 64]``; the keys of
    :data:`STRING_OVERRIDES` keep their text); dotted keys go into nested dicts: ``learner_kwargs.batch_size=64``
    -> ``{"learner_kwargs": {"batch_size": 64}}``."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like key=value (e.g. total_feedback=200)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = (raw.strip() if key in STRING_OVERRIDES else yaml.safe_load(raw)) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ValueError(f"override '{item}': '{p}' is not a mapping")
        d[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    kind: str | None = None,
) -> RunConfig:
    """Config from an optional YAML/JSON file, then ``overrides`` (flags) on top, validated.

    Args:
        path: ``.yaml``/``.yml``/``.json`` file (or ``None`` for the defaults).
        overrides: values that replace the file's (nested dicts merge).
        kind: ``"online"`` / ``"offline"``; default: the file's ``kind`` or ``online``.
    """
    data = _read_file(path) if path is not None else {}
    if overrides:
        data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(data, kind)
