"""What every market provider has: the configuration section it was built from."""

from __future__ import annotations

from dso import ProviderSettings


class ConfiguredProvider:
    """A provider built from its configuration section, and named by it.

    The market providers inherit from it and add ``fetch`` (and, where the
    API batches, ``fetch_batch``); those that read options check them in
    their own ``__init__`` after calling this one, so that a bad option is
    a `dso.ConfigError` when the provider is built, before any fetch.

    Args:
        settings: The provider's configuration section.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        """The provider's name, as configured."""
        return self._settings.name
