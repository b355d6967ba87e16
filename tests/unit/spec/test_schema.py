"""The shipped schemas: valid draft 2020-12, found from a checkout, covering the whole model."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

import pipex

from pipex.kits import node, python, shell
from pipex.spec.model import Step
from pipex.spec.schemas import CONFIG_SCHEMA, PIPELINE_SCHEMA, load_schema, schema_path

# Model field -> file field, for the fields whose names differ.
FILE_NAMES = {
    "output_path": "outputPath",
    "timeout_sec": "timeoutSec",
    "retry_delay_ms": "retryDelayMs",
    "allow_failure": "allowFailure",
    "allow_network": "allowNetwork",
    "read_only_rootfs": "readOnlyRootfs",
    "cap_drop": "capDrop",
    "condition": "if",
    "kit": "uses",
}


def test_schemas_are_valid_draft_2020_12() -> None:
    for name in (PIPELINE_SCHEMA, CONFIG_SCHEMA):
        schema = load_schema(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_kit_param_schemas_are_valid() -> None:
    for module in (shell, python, node):
        Draft202012Validator.check_schema(module.WITH_SCHEMA)


def test_schema_is_found_in_a_source_checkout() -> None:
    assert schema_path(PIPELINE_SCHEMA).parent.name == "schemas"
    assert json.loads(schema_path(PIPELINE_SCHEMA).read_text())["title"] == "pipex pipeline"


def test_every_step_field_of_the_model_is_in_the_schema() -> None:
    properties = load_schema(PIPELINE_SCHEMA)["$defs"]["step"]["properties"]
    for model_field in dataclasses.fields(Step):
        assert FILE_NAMES.get(model_field.name, model_field.name) in properties, model_field.name


def test_every_object_forbids_unknown_fields() -> None:
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("$id") is None:
                assert node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    for name in (PIPELINE_SCHEMA, CONFIG_SCHEMA):
        walk(load_schema(name), name)


def test_every_step_property_has_a_description() -> None:
    step = load_schema(PIPELINE_SCHEMA)["$defs"]["step"]["properties"]
    for name, prop in step.items():
        assert "description" in prop or "$ref" in prop, name


def test_schema_is_found_as_package_data_in_an_installed_layout(tmp_path: Path) -> None:
    # Mimic the wheel: schemas/ force-included as pipex/schemas, no repository around it.
    package = Path(pipex.__file__).resolve().parent
    installed = tmp_path / "site" / "pipex"
    shutil.copytree(package, installed, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package.parent / "schemas", installed / "schemas")
    code = "from pipex.spec.schemas import schema_path; print(schema_path('pipeline.schema.json'))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(installed / "schemas" / "pipeline.schema.json")
