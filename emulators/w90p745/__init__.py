"""Winbond W90P745 camera board (seed 001): boot loader, image table, Xmodem."""

from emulators.w90p745.board import W90P745Device

__all__ = ["W90P745Device"]
