"""Rooms and netcode on the server: matchmaking, relay, cluster, CPython replay."""
