"""The exceptions that mean "bad input" (shown to a user as one line, exit status 2).

Every stage raises a subclass of ``ValueError`` (bad content: a corrupt bundle, a wrong shape,
an impossible folding) or ``OSError`` (a missing dataset, an unwritable directory) with a
message that names the file and the field.
"""

from __future__ import annotations

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
