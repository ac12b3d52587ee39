"""``python -m polaris_jupyter.api [FILE]``: write the OpenAPI document (stdout without FILE)."""

from __future__ import annotations

from polaris_jupyter.api.openapi import main

main()
