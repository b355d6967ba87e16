"""How one step runs in a container: the contract in ``base``, the Docker engine in ``docker/`` (imported lazily).

Nothing is imported here: a plan reaches ``image_ids`` without paying for
``base`` or ``network``.
"""
