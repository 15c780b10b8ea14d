"""The exceptions that mean "bad input" or "a tool cannot do this" (shown to a user as one line,
exit status 2).

Every stage raises a subclass of ``ValueError`` (bad content: a corrupt bundle, a wrong shape,
an impossible folding), ``OSError`` (a missing dataset, an unwritable directory) or
:class:`HwqnnError` (a missing or failing external tool) with a message that names the file and
the field.
"""

from __future__ import annotations


class HwqnnError(Exception):
    """The root of hwqnn's own errors that are not about bad content or files."""


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, HwqnnError)
