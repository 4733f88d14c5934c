"""Loading config.yaml: YAML syntax, schema and cross-checks, every problem reported at once as
`PATH:LINE: key.path: what is wrong`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.config.checks import cross_check
from core.config.messages import explain
from core.config.schema import Config
from core.config.yamldoc import Doc, check_duplicates, dotted, drop, env_var_for, secret_keys
from core.errors import ConfigError


def load_config(path: str | Path) -> Config:
    """Read, validate and cross-check a config file. Raises ConfigError listing every problem found."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        context = exc.context or ""
        if context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            context += f" that starts on line {exc.context_mark.line + 1}"
        what = " ".join(p for p in (exc.problem, f"({context})" if context else None) if p)
        raise ConfigError([f"{shown}:{line}: yaml: {what or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{shown}:1: yaml: {exc}"]) from None

    if root is None:
        raise ConfigError([f"{shown}:1: <root>: the file is empty; it needs at least default_assistant and assistants"])
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ConfigError([f"{shown}:{root.start_mark.line + 1}: <root>: must be a mapping of keys to values"])

    doc = Doc(shown, root)
    errors: list[str] = []
    skip: set[str] = set()  # key paths already reported here; pydantic's "unknown key" would repeat them

    check_duplicates(doc, root, (), errors)
    for loc in secret_keys(root, ()):
        if _model_server(data, loc):
            fix = "put the key in an environment variable and name that variable with api_key_env"
        else:
            fix = f"set the environment variable {env_var_for(loc)} instead"
        errors.append(doc.error(loc, f"secrets never go in the config file: remove it and {fix}"))
        skip.add(dotted(loc))
        drop(data, loc)

    if "base_dir" in data:
        errors.append(doc.error(("base_dir",), "is set by the loader to the config file's directory; remove it"))
        del data["base_dir"]
    assistants = data.get("assistants")
    if isinstance(assistants, dict):
        for key, body in assistants.items():
            if not isinstance(body, dict):
                continue
            # A copy: YAML aliases (`math: *food`) share one dict, which would end up with the last name.
            assistants[key] = body = dict(body)
            if "name" in body and str(body["name"]) != str(key):
                errors.append(doc.error(("assistants", key, "name"),
                                        f"an assistant's name is its key under assistants ({key!r}); remove it"))
            body["name"] = str(key)
    base_dir = path.resolve().parent
    data["base_dir"] = str(base_dir)

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc, message = explain(err)
            if dotted(loc) not in skip:
                errors.append(doc.error(loc, message))
    errors.extend(cross_check(data, base_dir, doc))
    if errors or config is None:
        raise ConfigError(_by_line(shown, errors))
    return config


def _by_line(shown: str, errors: list[str]) -> list[str]:
    """Errors in file order (stable), without repeats."""
    def line(e: str) -> int:
        rest = e[len(shown) + 1:]
        number = rest.split(":", 1)[0]
        return int(number) if number.isdigit() else 0
    return sorted(dict.fromkeys(errors), key=line)


def _model_server(data: Any, loc: tuple) -> bool:
    """Whether `loc` lies in a `backends:` entry of a type that takes its key from `api_key_env`."""
    if len(loc) < 3 or loc[0] != "backends" or not isinstance(data, dict):
        return False
    entry = (data.get("backends") or {}).get(loc[1]) if isinstance(data.get("backends"), dict) else None
    return isinstance(entry, dict) and entry.get("type", "openai") != "openai"
