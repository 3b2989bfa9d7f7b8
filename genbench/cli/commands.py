"""Imports every verb module so that each registers its commands on the app."""

import genbench.cli.adm_parity  # noqa: F401
import genbench.cli.clip_score  # noqa: F401
import genbench.cli.eval  # noqa: F401
import genbench.cli.geneval  # noqa: F401
import genbench.cli.leaderboard  # noqa: F401
import genbench.cli.models  # noqa: F401
import genbench.cli.probe  # noqa: F401
import genbench.cli.ref  # noqa: F401
import genbench.cli.sample  # noqa: F401
import genbench.cli.tokenizers  # noqa: F401
import genbench.cli.train  # noqa: F401
import genbench.cli.version  # noqa: F401
