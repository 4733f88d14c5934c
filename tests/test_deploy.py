"""deploy/: the compose file and the Dockerfile, checked statically (images cannot be built here)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.config.load import load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SECRET_NAMES = re.compile(r"(TOKEN|SECRET|KEY|PASSWORD)")


def readme_install_command() -> str:
    """The README's first set-up line, without the `&& teambridge run` that starts the bot."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    first = block.strip().splitlines()[0].split("#", 1)[0]
    return first.split("&&", 1)[0].strip()


def test_the_image_is_built_with_the_readmes_install_command():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM python:(\d+)\.(\d+)", dockerfile, re.M)
    assert base and (int(base[1]), int(base[2])) >= (3, 11)
    runs = [line[len("RUN "):].strip() for line in dockerfile.splitlines() if line.startswith("RUN ")]
    install = readme_install_command()
    assert install == "pip install -e ."
    assert any(install.replace("pip install", "pip install --no-cache-dir") == run or install == run for run in runs)
    assert re.search(r'^CMD \["teambridge", "run"\]', dockerfile, re.M)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)   # not as root


def test_compose_runs_postgres_and_two_processes_behind_one_endpoint():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    bots = {name: s for name, s in services.items() if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}
    assert len(bots) == 2
    instances = set()
    for name, bot in bots.items():
        env = bot["environment"]
        url = env["TEAMBRIDGE_DB"]
        assert url.startswith("postgresql://") and ":" not in url.split("://")[1].split("@")[0], url  # no password
        assert env["PGPASSWORD"].startswith("${")
        for key, value in env.items():
            if SECRET_NAMES.search(key):
                assert str(value).startswith("${"), f"{name}: {key} must come from the environment"
        assert "SLACK_SIGNING_SECRET" in env and "SLACK_APP_TOKEN" not in env   # HTTP mode, not Socket Mode
        instances.add(env["TEAMBRIDGE_INSTANCE"])
        assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert len(instances) == 2
    proxy = services["proxy"]
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    config = load_config(DEPLOY / "config.yaml")
    upstreams = re.search(r"reverse_proxy /slack/\* (.+?) \{", caddyfile)[1].split()
    assert sorted(upstreams) == sorted(f"{name}:{config.slack.http_port}" for name in bots)
    assert any(str(p).endswith(":443") for p in proxy["ports"])


def test_the_deployment_config_is_valid_and_uses_postgres_over_http():
    config = load_config(DEPLOY / "config.yaml")
    assert config.database.startswith("postgresql://")
    assert config.slack.enabled and config.slack.mode == "http"
