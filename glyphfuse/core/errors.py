"""The one exception type users see.

Anything raised as :class:`GlyphfuseError` is a problem with the user's input or environment
(a missing file, a wrong device, a corrupt checkpoint). The CLI prints its message on one line
and exits with status 1; it never shows a traceback for these.
"""


class GlyphfuseError(Exception):
    """A user-facing error: the message says what went wrong and where."""
