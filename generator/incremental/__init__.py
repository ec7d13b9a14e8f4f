"""Incremental builds: the dependency record of the last build and what it lets the next one skip."""

from .plan import BuildState, IncrementalBuild, load_state, site_fingerprint, state_path

__all__ = ["BuildState", "IncrementalBuild", "load_state", "site_fingerprint", "state_path"]
