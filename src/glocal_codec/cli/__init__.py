"""The ``glocal-codec`` command line (typer); thin: parse, call the public API, print."""

from .app import app, main

__all__ = ["app", "main"]
