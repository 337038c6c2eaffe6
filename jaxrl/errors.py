"""The one exception type for user mistakes: the CLI prints its message, not a traceback."""


class JaxrlError(Exception):
    """A mistake in what the user asked for (config, env id, run directory, ...)."""
