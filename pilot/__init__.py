"""Pilot a study before launch: simulated participants walk it through the same Socket.IO
protocol the page uses (consent, instructions, surveys with valid answers, games played in
CPython with the experiment's own env and policies, rooms formed among the bots on the real
rollback netcode), then the data is checked: every step stored once, the survey answers
there, the export readable and matching the database.

    nox -s pilot -- EXPERIMENT --participants N --concurrency C [--url URL]
"""
