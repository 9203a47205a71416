"""Exceptions raised by sisgen for bad user input."""

from __future__ import annotations

import os


class SisgenInputError(ValueError):
    """A user-supplied file or value is unusable.

    The message always names the offending file (when there is one) and the problem, so a
    long run can record it in its manifest and move on.

    Attributes:
        path: The file at fault, or ``None`` when the problem is not tied to a file.
        problem: A short description of what is wrong.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
