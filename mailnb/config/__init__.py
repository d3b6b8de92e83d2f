"""The settings: the one registry every door is made from, the profiles that keep them, the
presets of known providers, the relay and sign-in targets, secrets and the pacing values."""
