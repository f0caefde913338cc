"""The Dagster UI serves the asset graph and its checks: start the real webserver on a free
localhost port and ask its GraphQL API, as the browser does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from factory_pipelines.instance import prepare_instance
from factory_pipelines.settings import REPO_ROOT, Settings
from tests.test_definitions import EXPECTED_ASSETS, EXPECTED_CHECKS

QUERY = """{ assetNodes { assetKey { path } groupName
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_webserver_shows_assets_and_checks(settings: Settings) -> None:
    prepare_instance(settings)
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-m", "factory_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        data = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=10)
                data = response.json()["data"]
                if data and data["assetNodes"]:
                    break
            except (requests.ConnectionError, KeyError, ValueError):
                pass
            time.sleep(1)
        assert data and data["assetNodes"], process.stderr.read().decode() if process.poll() is not None else "timeout"
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert {k: n["groupName"] for k, n in nodes.items()} == EXPECTED_ASSETS
        checks = {
            f"{key}:{c['name']}": c["blocking"]
            for key, n in nodes.items()
            for c in n["assetChecksOrError"].get("checks", [])
        }
        assert set(checks) == EXPECTED_CHECKS
        drift = {k for k in checks if k.startswith("drift/")}  # a drifted night warns or errs; it blocks nothing
        assert drift and {k for k, blocking in checks.items() if not blocking} == {
            "governance/review_actions:audit_log_verified", *drift}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
