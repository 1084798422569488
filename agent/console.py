"""The command line's two output streams: results on stdout, errors (never wrapped) on stderr."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
