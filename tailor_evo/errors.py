"""Errors that the CLI turns into one-line messages and exit code 2.

Bad input must name where it is wrong (file, line, field) so that a user can fix it
without reading a traceback.
"""

from __future__ import annotations


class TailorError(Exception):
    """Base class for errors that are the user's to fix (bad input, missing files)."""


class InputError(TailorError):
    """A problem with an input file or value, located as precisely as we can."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field, self.detail = file, line, field, message
        where = []
        if file is not None:
            where.append(str(file) + (f":{line}" if line is not None else ""))
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
