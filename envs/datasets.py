"""Offline datasets, one import for all of them (a re-export; each part lives in its own module).

* :class:`OfflineDataset` (:mod:`pbrl.envs.dataset`): D4RL's flat layout in memory.
* :func:`load_d4rl` / :func:`save_d4rl` (:mod:`pbrl.envs.d4rl`): D4RL's HDF5 layout, written atomically.
* :func:`to_minari` / :func:`from_minari` (:mod:`pbrl.envs.minari_io`): local Minari datasets, never downloaded.
* :func:`load_dataset` (:mod:`pbrl.envs.loading`): either of the two, by path or by Minari id.
* :func:`label_dataset`, :func:`rate_dataset`, :func:`import_index_labels`, :func:`segments_at`
  (:mod:`pbrl.envs.labelling`): preference (or rating) datasets from an offline dataset.
* :func:`normalized_score`, :func:`reference_scores`, :data:`D4RL_REF_SCORES`, :func:`d4rl_key`
  (:mod:`pbrl.envs.scores`): D4RL's normalised score ``100 * (R - R_random) / (R_expert - R_random)``, with
  D4RL's reference returns on every locomotion task.
* :func:`collect` (:mod:`pbrl.envs.collect`): collect a dataset here.
"""

from __future__ import annotations

from pbrl.envs.collect import collect
from pbrl.envs.d4rl import load_d4rl, save_d4rl
from pbrl.envs.dataset import OfflineDataset
from pbrl.envs.labelling import import_index_labels, label_dataset, rate_dataset, segments_at
from pbrl.envs.loading import load_dataset
from pbrl.envs.minari_io import from_minari, to_minari
from pbrl.envs.scores import D4RL_REF_SCORES, SCORE_NAME, d4rl_key, normalized_score, reference_scores

__all__ = [
    "OfflineDataset",
    "load_d4rl",
    "save_d4rl",
    "to_minari",
    "from_minari",
    "load_dataset",
    "normalized_score",
    "reference_scores",
    "D4RL_REF_SCORES",
    "SCORE_NAME",
    "d4rl_key",
    "label_dataset",
    "rate_dataset",
    "import_index_labels",
    "segments_at",
    "collect",
]
