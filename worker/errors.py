"""Errors an env's code can cause, shared by the env host and the adapters (a module of
its own so that neither has to import the other)."""


class EnvContractError(Exception):
    """The env code does not provide what the platform calls."""


class PlayersMismatch(EnvContractError):
    """The env's agents do not fit the game's players (checked at the server's startup too)."""
