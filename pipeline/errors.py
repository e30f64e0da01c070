"""One exception type for user mistakes, so the CLI can print one line and exit 2."""


class UserError(Exception):
    """A problem with the user's input (file, option, config) rather than a bug.

    The CLI prints ``error: <message>`` and exits with status 2; the message should say
    what is wrong and what to do about it.
    """
