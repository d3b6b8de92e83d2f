"""Where a message goes: a registry of transports (SMTP relay, .eml pickup folder, Microsoft
Graph, direct delivery to each domain's MX), each a connection with the same few methods."""
from .base import Connection, Transport, connect, lookup, register
from .outcome import Delivery, Envelope

__all__ = ["Connection", "Delivery", "Envelope", "Transport", "connect", "lookup", "register"]
