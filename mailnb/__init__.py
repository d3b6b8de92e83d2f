"""mailnb: personalised bulk email from Jupyter notebooks and scripts."""
from __future__ import annotations

from .errors import (AuthenticationError, ConfigError, JournalError, MailnbError, PreflightError,
                     RecipientError, RelayError, SecretMissingError, TemplateError, TLSError)
from .messages import build_message
from .recipients import Audience, Blocklist, Suppressions, Unsubscribes
from .journal import Journal, SQLiteJournal, history
from .pgjournal import PostgresJournal   # registers the postgresql:// journals (psycopg loads on use)
from .pacing import Pacing
from .sender import Campaign, StoppedError, send, send_async, send_test
from .job import Job
from .options import SendOptions
from .settings import PRESETS, Pickup, Profile, Relay, Secret, list_profiles
from .templates import Template
from .transports import check_relay

__version__ = "0.1.0"

__all__ = [
    "Audience", "AuthenticationError", "Campaign", "Job", "SendOptions", "StoppedError",
    "send_test", "Journal", "Pacing", "Pickup", "Relay",
    "SQLiteJournal", "PostgresJournal", "Secret", "check_relay", "history", "send", "send_async", "Profile",
    "PRESETS", "list_profiles", "Blocklist", "ConfigError", "JournalError", "MailnbError",
    "PreflightError", "RecipientError", "RelayError", "SecretMissingError", "Suppressions",
    "TLSError", "Template", "TemplateError", "Unsubscribes", "build_message", "__version__",
]
