"""The pull-request report (`make report`, `python -m ops.report`): what a change did to the model compared
with its base revision, and whether it passes the gate.

Which file answers which question:
- outputs.py: what one side of the comparison is (the pipeline outputs of a revision or the working tree);
- gate.py: does the pull request pass (metric floors, no regression beyond tolerance);
- render.py: how the report reads (report.md, comment.md);
- plots.py: the PNG images beside it;
- build.py: the command: read both sides, judge, write report.md, the images and verdict.json.
"""
