"""What every part of the diagram service raises: author-facing messages, no location."""

from __future__ import annotations

class DiagramError(Exception):
    """A diagram that cannot be shown; the message is for the author (no location)."""

    transient = False
    """True for failures that depend on the machine (timeouts, crashes): never cached."""


class TransientDiagramError(DiagramError):
    transient = True
