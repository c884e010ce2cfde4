"""fitcheck: can this device run that LLM, at which quantization, how fast?"""

from fitcheck.errors import FitcheckError, GGUFError, ProbeError, ProfileError, UsageError

__version__ = "0.1.0"

__all__ = ["FitcheckError", "GGUFError", "ProbeError", "ProfileError", "UsageError", "__version__"]
