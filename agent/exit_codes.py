"""Exit codes of `vla-agent`, one meaning each, so scripts and CI can tell outcomes apart."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command ran and its outcome was negative (a reach missed, a run failed)
    BAD_INPUT = 2  # the input is wrong: a malformed scenario, an unknown name, a bad option
    CANNOT_PLAN = 3  # reserved for goals the planner cannot decompose or achieve
    INTERRUPTED = 130  # Ctrl-C
