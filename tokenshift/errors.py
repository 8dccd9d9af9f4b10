"""The error type whose message is the whole story for the user (the CLI prints it as one line, exit 2)."""


class UserError(Exception):
    """An error whose message is the whole story for the user."""
