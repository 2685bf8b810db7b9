"""A labelling page for people: watch two clips (or rate one, in rating mode), press a key, and the label is safe.

* :mod:`pbrl.label.queue`: queue files of candidate pairs (``pbrl label queue``);
* :mod:`pbrl.label.render`: clips rendered from simulator states, H.264 MP4, cached, rendered ahead;
* :mod:`pbrl.label.store` / :mod:`pbrl.label.server`: SQLite store and FastAPI app (``pbrl label serve``), whose
  routes (:mod:`pbrl.label.routes`) take the server's state through a FastAPI dependency;
* :mod:`pbrl.label.export`: answers to a PreferenceDataset, or a RatingDataset for a rating queue
  (``pbrl label export``);
* :mod:`pbrl.label.teacher`: :class:`HumanTeacher`, a person in the online loop.

The server needs the ``label`` extra (fastapi, uvicorn, httpx).
"""

from pbrl.label.export import export_labels, export_preferences, export_ratings
from pbrl.label.queue import LabelQueue, make_queue
from pbrl.label.render import ClipRenderer, write_mp4
from pbrl.label.store import LabelStore
from pbrl.label.teacher import HumanTeacher

__all__ = ["LabelQueue", "make_queue", "ClipRenderer", "write_mp4", "LabelStore", "export_preferences", "export_ratings",
           "export_labels", "HumanTeacher"]
