"""Start tracing on import when the environment asks for it.

Add ``import typetrace.auto`` at the top of a service's entry point. It does nothing
unless ``TYPETRACE=1`` is set (or a traced parent exported its settings), so it can
stay in production code. Tracing then runs with the default config, sampling calls
as :class:`typetrace.config.Sampling` describes, until the process exits.
"""

from typetrace._subprocess import start_from_environment

start_from_environment()
