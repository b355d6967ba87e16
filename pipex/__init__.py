"""pipex: a make-like build tool whose steps run in Docker containers."""

__version__ = "0.1.0"

__all__ = ["__version__"]
