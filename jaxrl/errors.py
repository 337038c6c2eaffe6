"""The one exception type for user mistakes: the CLI prints its message, not a traceback."""


class JaxrlError(Exception):
    """A mistake in what the user asked for (config, env id, run directory, ...)."""


class Preempted(JaxrlError):
    """A run stopped on SIGTERM/SIGINT after writing a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
