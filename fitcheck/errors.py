"""One error family: the core raises these, the CLI turns them into one line."""


class FitcheckError(Exception):
    """Base of every error fitcheck raises on purpose."""


class GGUFError(FitcheckError):
    """A GGUF file is missing, malformed or unsupported."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(FitcheckError):
    """An option or argument that cannot be honoured."""


class ProbeError(FitcheckError):
    """A probe could not measure what it was asked to."""


class ProfileError(FitcheckError):
    """A saved device profile cannot be read or written."""
