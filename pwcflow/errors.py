"""The one exception type for problems a user can fix (bad files, overrides, credentials)."""


class UserError(Exception):
    """A problem the user can fix; entry points print its one-line message and exit 1."""
