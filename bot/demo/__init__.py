"""The offline demo: the real bot against the local stand-ins."""
