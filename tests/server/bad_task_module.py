"""A task module that fails at import (a user's typo): the server must start without it."""

from __future__ import annotations

raise TypeError("unsupported operand type(s) for +: 'int' and 'str' (a deliberate error for the test)")
