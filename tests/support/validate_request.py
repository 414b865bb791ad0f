"""Checks a request body against the request schema an OpenAPI description gives.

    validate_request.py SPEC METHOD PATH_TEMPLATE CONTENT_TYPE [--closed] < instance.json
    validate_request.py SPEC component NAME - < instance.json

SPEC is a .yaml or .json OpenAPI file; the schema is
paths[PATH_TEMPLATE][METHOD].requestBody.content[CONTENT_TYPE].schema, validated as JSON
Schema 2020-12 (what OpenAPI 3.1 schemas are; the 3.0 schemas used here are a subset) with
every `$ref` resolved inside SPEC. --closed also refuses properties the schema does not
declare at the top level (a form-encoded API ignores no typo silently).
Prints "ok" and exits 0, or prints each error and exits 1.
"""

import json
import sys

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def main():
    spec_path, method, path, ctype = sys.argv[1:5]
    closed = "--closed" in sys.argv[5:]
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if spec_path.endswith((".yaml", ".yml")) else json.load(f)
    if method == "component":
        # A schema the description declares without an operation (webhook payloads).
        schema = spec["components"]["schemas"][path]
    else:
        schema = spec["paths"][path][method.lower()]["requestBody"]["content"][ctype]["schema"]
    if closed:
        schema = dict(schema)
        if "properties" not in schema:
            sys.exit("--closed needs a schema with top-level properties")
        schema["additionalProperties"] = False
    # Make every "#/components/..." reference resolve inside the spec.
    registry = Registry().with_resource("urn:spec", Resource(spec, DRAFT202012))
    wrapper = {"$id": "urn:check", "allOf": [rewrite(schema)]}
    validator = jsonschema.Draft202012Validator(wrapper, registry=registry)
    instance = json.load(sys.stdin)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        for e in errors:
            print(f"{list(e.absolute_path)}: {e.message}")
            for sub in (e.context or [])[:6]:
                print(f"    {list(sub.absolute_path)}: {sub.message}")
        sys.exit(1)
    print("ok")


def rewrite(node):
    """Points local references ("#/...") at the spec resource."""
    if isinstance(node, dict):
        return {
            k: ("urn:spec" + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else rewrite(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [rewrite(v) for v in node]
    return node


if __name__ == "__main__":
    main()
