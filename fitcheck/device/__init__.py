"""Devices: resolving a name, a saved profile or this machine into one Target (usable memory, speed inputs)."""
