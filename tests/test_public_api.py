"""The public names of dso are the ones __all__ lists."""

import inspect

import dso


def test_every_public_name_is_listed() -> None:
    """__all__ holds exactly the public names dso.__init__ imports."""
    public = {
        name
        for name, value in vars(dso).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }

    assert sorted(public) == sorted(dso.__all__)


def test_all_is_sorted_constants_first() -> None:
    """__all__ is sorted as ruff's RUF022 wants: constants, classes, functions."""
    expected = sorted(dso.__all__, key=lambda name: (not name.isupper(), name))

    assert expected == dso.__all__
