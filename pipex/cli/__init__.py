"""The command line: the typer app (``main``), the typer-free fast path for ``plan`` (``fast_plan``), one module per command group."""
