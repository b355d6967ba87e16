"""A local kit for tests: echo a greeting."""

WITH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["greeting"],
    "properties": {"greeting": {"type": "string"}},
}


def expand(params, ctx):
    """Say the greeting in the configured image."""
    return {"image": ctx.image or "alpine:3.20", "cmd": ["echo", params["greeting"], ctx.step_id]}
