"""``python -m waveflow_py`` is the ``waveflow`` command."""

import sys

from waveflow_py.cli import main

sys.exit(main())
