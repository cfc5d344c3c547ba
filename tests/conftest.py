from pathlib import Path

import pytest

from dso.testing import find_fixtures_dir


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of recorded provider responses, outside the repository."""
    return find_fixtures_dir()
