"""The handler that writes typetrace's warnings where no other handler takes them.

Where no handler of the program's logging configuration takes a warning, logging
writes it to ``sys.stderr`` with its last-resort handler. When that write fails, as
after the traced program closed stderr, logging raises the error from the call that
logged the warning, which is often inside the tracer, so the program would get an
exception of the tracer's. :class:`QuietLastResort`, on the ``typetrace`` logger,
writes in the same cases and the same text, and drops a warning that it cannot write.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["QuietLastResort", "install"]

# The class of logging's own last-resort handler.
_DEFAULT_LAST_RESORT = type(logging.lastResort)


class QuietLastResort(logging.Handler):
    """Writes a record to ``sys.stderr`` as logging's last-resort handler would, when
    no other handler of the record's logger or its ancestors takes it, and drops a
    record that it cannot write."""

    def emit(self, record: logging.LogRecord) -> None:
        if self._has_other_handler(record.name):
            return
        last = logging.lastResort
        manager = logging.Logger.manager
        try:
            # A program may turn the last resort off, or replace it with its own.
            if last is None:
                if logging.raiseExceptions and not manager.emittedNoHandlerWarning:
                    sys.stderr.write(f'No handlers could be found for logger "{record.name}"\n')
                    manager.emittedNoHandlerWarning = True
            elif record.levelno < last.level:
                return
            elif type(last) is not _DEFAULT_LAST_RESORT:
                last.handle(record)
            elif sys.stderr is not None:
                sys.stderr.write(self.format(record) + "\n")
                sys.stderr.flush()
        except Exception:  # noqa: BLE001, S110 - the program's stderr is unusable
            pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass

    def _has_other_handler(self, name: str) -> bool:
        # The walk of logging's Logger.callHandlers, which uses the last resort when
        # it finds no handler.
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


def install() -> None:
    """Add a :class:`QuietLastResort` to the ``typetrace`` logger, once."""
    logger = logging.getLogger("typetrace")
    if not any(isinstance(handler, QuietLastResort) for handler in logger.handlers):
        logger.addHandler(QuietLastResort())
