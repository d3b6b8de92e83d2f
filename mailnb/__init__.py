"""mailnb: personalised bulk email from Jupyter notebooks and scripts."""
from __future__ import annotations

from .audience.recipients import Audience, Blocklist, Suppressions, Unsubscribes
from .compose.messages import build_message
from .compose.templates import Template
from .config.options import SendOptions
from .config.pacing import Pacing
from .config.presets import PRESETS
from .config.profile import Profile, list_profiles
from .config.secrets import Secret
from .config.targets import Pickup, Relay
from .errors import (
                     AuthenticationError,
                     ConfigError,
                     JournalError,
                     MailnbError,
                     PreflightError,
                     RecipientError,
                     RelayError,
                     SecretMissingError,
                     TemplateError,
                     TLSError,
)
from .job import Job
from .journal import Journal, SQLiteJournal, history
from .journal.postgres import (
                     PostgresJournal,  # registers the postgresql:// journals (psycopg loads on use)
)
from .sending.campaign import Campaign
from .sending.front import StoppedError, send, send_async
from .sending.trial import send_test
from .transports.check import check_relay

__version__ = "0.1.0"

__all__ = [
    "Audience", "AuthenticationError", "Campaign", "Job", "SendOptions", "StoppedError",
    "send_test", "Journal", "Pacing", "Pickup", "Relay",
    "SQLiteJournal", "PostgresJournal", "Secret", "check_relay", "history", "send", "send_async",
    "Profile",
    "PRESETS", "list_profiles", "Blocklist", "ConfigError", "JournalError", "MailnbError",
    "PreflightError", "RecipientError", "RelayError", "SecretMissingError", "Suppressions",
    "TLSError", "Template", "TemplateError", "Unsubscribes", "build_message", "__version__",
]
