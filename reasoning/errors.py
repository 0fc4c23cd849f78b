"""One exception type for every error a user can cause: the CLI and the pages turn it into a
single clear message (exit code 2 in the CLI), never a traceback."""


class UserError(Exception):
    """Bad input or environment the user can fix: the message says what to do."""
