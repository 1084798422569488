"""Structured logging for the command line: structlog, to stderr, quiet unless asked."""

from __future__ import annotations

import logging
import sys

import structlog


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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
