"""Validates a Spin manifest (TOML on stdin) against Spin's manifest v2 JSON schema.

Usage: python validate_spin_manifest.py <schema.json> < spin.toml
Prints `valid`, or one line per schema violation; exits 0 when valid, 1 when not.
"""

import json
import sys
import tomllib

import jsonschema


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    manifest = tomllib.loads(sys.stdin.read())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        validator_class(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path)
    )
    for error in errors:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        print(f"{path}: {error.message}")
    if not errors:
        print("valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
