"""pbrl: preference-based reinforcement learning for robotics and continuous control."""

from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.segments import Segments, Trajectory, sample_segment_pairs, sample_segments
from pbrl.teachers import RatingTeacher, RegretTeacher, ScriptedTeacher, Teacher, make_teacher

#: pbrl's version (the package metadata's)
__version__ = "0.1.0"

__all__ = [
    "Segments",
    "Trajectory",
    "sample_segments",
    "sample_segment_pairs",
    "PreferenceDataset",
    "RatingDataset",
    "Teacher",
    "ScriptedTeacher",
    "RegretTeacher",
    "RatingTeacher",
    "make_teacher",
    "__version__",
]
