"""``python -m pipex``: the same as the ``pipex`` command."""

from pipex.entry import main

main()
