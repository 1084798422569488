"""The composition of the parts: the command line, demos and (later) the HTTP service."""
