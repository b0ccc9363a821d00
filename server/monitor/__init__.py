"""The live study monitor: who is where right now (presence.py), the picture pushed to
signed-in researchers every second, and the actions they may take."""
