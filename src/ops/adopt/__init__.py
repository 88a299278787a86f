"""`make adopt`: the user's data becomes the project's (infer: the decisions; run: the command)."""
