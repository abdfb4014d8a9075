"""Keeps run logs readable: library INFO chatter (orbax, jax internals) is hidden, warnings kept."""

from __future__ import annotations

import logging

_NOISY_PATHS = ("/orbax/", "/jax/_src/", "/etils/", "/apache_beam/")


class _DropLibraryInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(part in record.pathname for part in _NOISY_PATHS)


def quiet_library_logs() -> None:
    """Drops INFO records emitted from orbax / jax internals / apache_beam on every absl and root handler."""
    noise_filter = _DropLibraryInfo()
    for logger in (logging.getLogger(), logging.getLogger("absl")):
        logger.addFilter(noise_filter)
        for handler in logger.handlers:
            handler.addFilter(noise_filter)
