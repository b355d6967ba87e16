"""The shared remote cache on an S3-compatible object store (docs: README 'Sharing results', ../shared/REMOTE.md §1)."""
