"""mailnb: personalised bulk email from Jupyter notebooks and scripts."""
from __future__ import annotations

from .errors import (AuthenticationError, ConfigError, JournalError, MailnbError, PreflightError,
                     RecipientError, RelayError, SecretMissingError, TemplateError, TLSError)
from .compose.messages import build_message
from .audience.recipients import Audience, Blocklist, Suppressions, Unsubscribes
from .journal.sqlite import Journal, SQLiteJournal, history
from .journal.postgres import PostgresJournal   # registers the postgresql:// journals (psycopg loads on use)
from .config.pacing import Pacing
from .sending.sender import Campaign, StoppedError, send, send_async, send_test
from .job import Job
from .config.options import SendOptions
from .config.settings import PRESETS, Pickup, Profile, Relay, Secret, list_profiles
from .compose.templates import Template
from .transports.smtp import check_relay

__version__ = "0.1.0"

__all__ = [
    "Audience", "AuthenticationError", "Campaign", "Job", "SendOptions", "StoppedError",
    "send_test", "Journal", "Pacing", "Pickup", "Relay",
    "SQLiteJournal", "PostgresJournal", "Secret", "check_relay", "history", "send", "send_async", "Profile",
    "PRESETS", "list_profiles", "Blocklist", "ConfigError", "JournalError", "MailnbError",
    "PreflightError", "RecipientError", "RelayError", "SecretMissingError", "Suppressions",
    "TLSError", "Template", "TemplateError", "Unsubscribes", "build_message", "__version__",
]
