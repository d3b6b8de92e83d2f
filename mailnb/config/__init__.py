"""The settings: the one registry every door is made from, the profiles that keep them, the
presets of known providers, the relay and sign-in targets, secrets and the pacing values."""
from .options import SendOptions
from .pacing import Pacing, Window
from .presets import PRESETS, Preset, apply_preset, preset
from .profile import Profile, config_dir, list_profiles, target_for
from .secrets import Secret, find_password
from .targets import Direct, Graph, Mailbox, OAuth, Pickup, Relay, Target

__all__ = ["PRESETS", "Direct", "Graph", "Mailbox", "OAuth", "Pacing", "Pickup", "Preset",
           "Profile", "Relay", "Secret", "SendOptions", "Target", "Window", "apply_preset",
           "config_dir", "find_password", "list_profiles", "preset", "target_for"]
