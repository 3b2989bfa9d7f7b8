"""Imports every verb module so that each registers its commands on the app."""

from genbench.cli import version  # noqa: F401
