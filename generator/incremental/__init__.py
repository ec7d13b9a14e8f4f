"""Incremental builds: the dependency record of the last build and what it lets the next one skip.

`record` keeps the record on disk, `fingerprints` says what a page or the site was made from, and
`plan` is one build's use of it: read once to plan, written once to record.
"""

from .plan import IncrementalBuild, Plan, PlanStats
from .record import BuildState, load_state, save_state, state_path

__all__ = ["BuildState", "IncrementalBuild", "Plan", "PlanStats", "load_state", "save_state", "state_path"]
