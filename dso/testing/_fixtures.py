"""Where the recorded provider responses live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


FIXTURES_ENV = "DSO_FIXTURES"
"""The environment variable that names the fixtures folder."""

# The recordings sit beside the repository checkout, not inside it:
# /work/main -> /work/shared/fixtures, or X/p -> X/shared/fixtures in CI.
_BESIDE = Path("shared", "fixtures")

_MARKER = "SOURCES.md"


def find_fixtures_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of recorded provider responses.

    The first of these wins: *explicit*; the ``DSO_FIXTURES`` environment
    variable; the first ancestor ``A`` of the current directory, then of
    this source file, for which ``A/shared/fixtures/SOURCES.md`` exists.

    Args:
        explicit: A folder chosen by the caller.

    Raises:
        FileNotFoundError: The chosen folder does not exist, or none was
            chosen and none was found.
    """
    if explicit is not None:
        return _existing(Path(explicit), "the folder given")

    from_env = os.environ.get(FIXTURES_ENV)
    if from_env:
        return _existing(Path(from_env), f"${FIXTURES_ENV}")

    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for candidate in _candidates(starts):
        if (candidate / _MARKER).is_file():
            return candidate

    searched = " and ".join(str(start) for start in starts)
    raise FileNotFoundError(
        f"no recorded fixtures found: looked for {_BESIDE / _MARKER} in the "
        f"ancestors of {searched}; set ${FIXTURES_ENV} to the fixtures folder"
    )


def _existing(folder: Path, source: str) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"{source} is not a folder of fixtures: {folder}")

    return folder


def _candidates(starts: list[Path]) -> Iterator[Path]:
    for start in starts:
        for ancestor in (start, *start.parents):
            yield ancestor / _BESIDE
