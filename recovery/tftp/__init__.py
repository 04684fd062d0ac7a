"""The engine's embedded TFTP server (``server.py``), the one the Hi3511 operations use."""
