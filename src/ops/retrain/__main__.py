"""`python -m ops.retrain [run|push|propose]`: see ops.retrain.run."""

from ops.retrain.run import main

raise SystemExit(main())
