"""The record of every recipient's outcome, so that no run sends twice: the roles a journal plays
(:mod:`mailnb.journal.base`), SQLite on one machine, PostgreSQL when workers share a campaign, and
what a person may ask of what is kept (export, erase, expire)."""
from .base import Journal
from .open import copy_journal, history, open_journal, timeline
from .sqlite import SQLiteJournal

__all__ = ["Journal", "SQLiteJournal", "copy_journal", "history", "open_journal", "timeline"]
