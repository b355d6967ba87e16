"""``python -m pipex``: the same as the ``pipex`` command."""

from pipex.cli import main

main()
