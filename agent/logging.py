"""Structured logging for the command line: structlog, to stderr, quiet unless asked."""

from __future__ import annotations

import logging
import sys

import structlog


class _CurrentStderr:
    """Whatever `sys.stderr` is when an event is written, not when logging was configured: a
    command run inside another program (a test's CliRunner, a notebook) swaps and closes streams."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(verbose: bool = False, json_lines: bool = False) -> None:
    """Human-readable events on stderr (JSON lines when `json_lines`); debug with `verbose`."""
    level = logging.DEBUG if verbose else logging.WARNING
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
