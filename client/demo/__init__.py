"""``fedcodec demo``: the platform end to end on MRI that ships with fedcodec's dependencies.

Each step is a plain function (``client/demo/step_*.py``) taking a :class:`DemoContext`; the
runner (:func:`fedcodec.client.demo.runner.run_demo`) runs the chosen steps in order, checks each
step's components by capability first (a missing one is a clear ``skipped`` line, never fake
output), stops every service it started, prints a summary table and writes ``report.md``.
"""
