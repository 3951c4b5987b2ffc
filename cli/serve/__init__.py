"""``embed serve``: one run over HTTP (FastAPI + uvicorn), and a page to draw a symbol, enrol it and ask.

A skin like the CLI: every answer comes from the same library calls as ``embed predict`` / ``enroll`` /
``forget`` / ``index`` and ``adder predict``. :func:`cli.serve.app.create_app` builds the app; importing
this package imports neither FastAPI nor torch, so ``embed --help`` stays fast.
"""
