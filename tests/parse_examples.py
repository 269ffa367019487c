"""Parse the example files in docs/examples for tests/ship.rs and print them as JSON.

A Dockerfile is parsed by BuildKit's own parser (the `dockerfile` package wraps the Go
parser that `docker build` uses), YAML by PyYAML. Output: one JSON object that maps each
path given on the command line to its parsed form.
"""

import json
import sys

import dockerfile
import yaml


def parse_dockerfile(path):
    return [
        {
            "instruction": command.cmd.upper(),
            "flags": list(command.flags),
            "value": list(command.value),
            "json": command.json,
            "line": command.start_line,
        }
        for command in dockerfile.parse_file(path)
    ]


def parse_yaml(path):
    with open(path, encoding="utf-8") as file:
        return list(yaml.safe_load_all(file))


def main():
    parsed = {}
    for path in sys.argv[1:]:
        parsed[path] = parse_dockerfile(path) if path.endswith("Dockerfile") else parse_yaml(path)
    json.dump(parsed, sys.stdout)


if __name__ == "__main__":
    main()
