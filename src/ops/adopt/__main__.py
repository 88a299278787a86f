"""`python -m ops.adopt` (`make adopt`): see ops.adopt.run."""

import sys

from ops.adopt.run import main

if __name__ == "__main__":
    sys.exit(main())
