"""The benchmark scripts are run as scripts, not installed: import them from their folder.

Appended, not prepended, so that the scripts' short module names never shadow a package.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "inference"))
