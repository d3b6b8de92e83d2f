"""mailnb: personalised bulk email from Jupyter notebooks and scripts."""
from __future__ import annotations

from .errors import (AuthenticationError, ConfigError, JournalError, MailnbError, PreflightError,
                     RecipientError, RelayError, SecretMissingError, TemplateError, TLSError)
from .messages import build_message
from .recipients import Audience, Blocklist, Suppressions, Unsubscribes
from .templates import Template

__version__ = "0.1.0"

__all__ = [
    "Audience", "AuthenticationError", "Blocklist", "ConfigError", "JournalError", "MailnbError",
    "PreflightError", "RecipientError", "RelayError", "SecretMissingError", "Suppressions",
    "TLSError", "Template", "TemplateError", "Unsubscribes", "build_message", "__version__",
]
