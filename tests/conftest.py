from pathlib import Path

import hypothesis
import pytest

from dso.testing import find_fixtures_dir


# CI runs a bounded number of examples; `nox -s thorough` asks for many more
# with --hypothesis-profile=thorough. No deadline: examples run on trio's
# clock or none, and a loaded CI machine must not turn slowness into failure.
hypothesis.settings.register_profile("ci", max_examples=200, deadline=None)
hypothesis.settings.register_profile(
    "thorough", max_examples=50_000, deadline=None, stateful_step_count=60
)
hypothesis.settings.load_profile("ci")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of recorded provider responses, outside the repository."""
    return find_fixtures_dir()
