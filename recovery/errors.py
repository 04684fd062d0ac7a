"""Errors and exit codes of the engines.

Every failure the user can act on is a :class:`RecoveryError`; each subclass fixes
the exit code (:data:`EXIT_CODES`, :func:`exit_codes_epilog`). An error's message
says what went wrong; ``flash_state`` says what the flash holds now and ``hint``
what to do next. ``facts`` carries whatever the operation learnt before failing
(it is merged into the ``--json`` result).
"""

from __future__ import annotations

from typing import Any, ClassVar

# -- exit codes -----------------------------------------------------------------

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONSOLE = 4
EXIT_NETWORK = 5
EXIT_VERIFY = 6
EXIT_DEVICE = 7
EXIT_BOOT = 8
EXIT_REFUSED = 9
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: please report it with the transcript)",
    EXIT_USAGE: "bad command line",
    EXIT_INPUT: "bad input file (not the right format, too large, unsafe name); nothing was touched",
    EXIT_CONSOLE: "serial console problem (cannot open the port, no answer, garbage, wrong state)",
    EXIT_NETWORK: "network/TFTP problem (settings, server, file missing, transfer failed)",
    EXIT_VERIFY: "verification failed (a CRC did not match)",
    EXIT_DEVICE: "the boot loader reported an error (erase, copy, protected sectors)",
    EXIT_BOOT: "the board booted but badly (JFFS2 CRC errors, root not mounted, kernel panic)",
    EXIT_REFUSED: "refused for safety (no backup, boot loader area without confirmation)",
    EXIT_INTERRUPTED: "interrupted by the user",
}


def exit_codes_epilog() -> str:
    """The exit code table for an argparse ``epilog`` (use RawDescriptionHelpFormatter)."""
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {text}" for code, text in EXIT_CODES.items()]
    return "\n".join(lines)


# -- errors ---------------------------------------------------------------------


class RecoveryError(Exception):
    """A failure the user can act on. Subclasses fix the exit code."""

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        flash_state: str | None = None,
        hint: str | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.flash_state = flash_state
        self.hint = hint
        self.facts: dict[str, Any] = dict(facts or {})

    def describe(self) -> str:
        """Message, flash state and what to do, as shown to a person."""
        parts = [self.message]
        if self.flash_state:
            parts.append(f"Flash: {self.flash_state}")
        if self.hint:
            parts.append(f"What to do: {self.hint}")
        return "\n".join(parts)


class UsageError(RecoveryError):
    exit_code = EXIT_USAGE


class ImageError(RecoveryError):
    """The input file is refused before anything is touched."""

    exit_code = EXIT_INPUT


class ConsoleError(RecoveryError):
    """The serial console cannot be opened, does not answer, or is in the wrong state."""

    exit_code = EXIT_CONSOLE


class NetworkError(RecoveryError):
    exit_code = EXIT_NETWORK


class VerifyError(RecoveryError):
    exit_code = EXIT_VERIFY


class DeviceError(RecoveryError):
    """The boot loader printed an error for a command."""

    exit_code = EXIT_DEVICE


class BootError(RecoveryError):
    exit_code = EXIT_BOOT


class RefusedError(RecoveryError):
    exit_code = EXIT_REFUSED


class Interrupted(RecoveryError):
    exit_code = EXIT_INTERRUPTED
