"""One error family: the core raises these, the CLI turns each into one line.

Callers branch on the type, never on the message text.
"""


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


class UnknownModelError(UsageError):
    """A model name that is neither a file, a catalog id nor a size alias."""


class DeviceError(UsageError):
    """A device name that is unknown or ambiguous, or a RAM choice it does not come with."""


class ProbeError(FitcheckError):
    """A probe could not measure what it was asked to."""


class ProfileError(FitcheckError):
    """A saved device profile cannot be read, written or used."""


class NoProfileError(ProfileError):
    """No profile has been saved yet (`fitcheck probe` makes one)."""


class NoSpeedError(FitcheckError):
    """The device lacks what a speed estimate needs (bandwidth, a probed profile)."""


class LlamaRunError(FitcheckError):
    """A real llama.cpp run failed, crashed or timed out."""


class CalibrationError(FitcheckError):
    """A calibration that cannot be made or stored."""


class ForecastError(FitcheckError):
    """A forecast that cannot be made from the device data."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (SIGINT is KeyboardInterrupt itself): everything started was cleaned up; exit
    128 + the signal. Not a FitcheckError, as KeyboardInterrupt is not an Exception: no `except FitcheckError` or
    `except Exception` that records a failure and goes on (a probe's, a scan entry's) may swallow it."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")
