"""`python -m ops.monitor`: see run.py."""

import sys

from ops.monitor.run import main

sys.exit(main())
