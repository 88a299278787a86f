"""`python -m ops.report` (`make report`): see ops.report.build."""

import sys

from ops.report.build import main

if __name__ == "__main__":
    sys.exit(main())
