"""Imports every verb module so that each registers its commands on the app."""

import genbench.cli.leaderboard  # noqa: F401
import genbench.cli.train  # noqa: F401
from genbench.cli import version  # noqa: F401
