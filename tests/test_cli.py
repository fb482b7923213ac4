"""The ``opsconsole`` command line: subcommands as separate processes, as a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from opsconsole.launch import EmbeddedCluster


def opsconsole(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_help_lists_the_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "sandbox" in out and "serve" in out and "--backend" in out


def test_sandbox_command_serves_a_cluster_for_any_client(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = opsconsole(
        "sandbox",
        "--fleet",
        "demo",
        "--seed",
        "3",
        "--port",
        "0",
        "--kubeconfig-out",
        str(kubeconfig),
        "--backend-kubeconfig-out",
        str(tmp_path / "backend-kubeconfig"),
    )
    try:
        wait_for(kubeconfig, proc)
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        nodes = k8s.CoreV1Api(api).list_node().items
        assert len(nodes) >= 12
        for node in nodes:
            assert node.metadata is not None and node.metadata.labels is not None
            assert node.metadata.labels.get("nvidia.com/gpu.product")
        # The backend's ServiceAccount reads the fleet and nothing it does not need.
        backend = k8s.CoreV1Api(
            k8s_config.new_client_from_config(config_file=str(tmp_path / "backend-kubeconfig"))
        )
        assert len(backend.list_node().items) == len(nodes)
        with pytest.raises(k8s.ApiException) as denied:
            backend.list_secret_for_all_namespaces()
        assert denied.value.status == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_serve_without_cluster_access_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = opsconsole("serve", "--kubeconfig", str(tmp_path / "missing"), env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert "missing" in err


def test_serve_collects_garbage_again_once_its_imports_are_frozen() -> None:
    """``serve`` pauses the collector while it imports the backend; left paused, a backend
    would never free a cycle."""
    script = (
        "import gc\nfrom opsconsole.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10_000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "True True"


def test_embedded_cluster_starts_and_cleans_up() -> None:
    embedded = EmbeddedCluster(fleet="demo", seed=2, operator="carol")
    embedded.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{embedded.backend_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert embedded.error is None, embedded.error
            assert time.monotonic() < deadline, f"backend never ready; see {embedded.log_dir}"
            time.sleep(0.1)
        children = list(embedded._children)
        assert len(children) == 2
        # The local user is the embedded backend's admin, with the token the console is given.
        token = embedded.progress().token
        assert token
        with httpx.Client(base_url=embedded.backend_url, timeout=10) as http:
            assert http.get("/api/v1/info").status_code == 401
            bearer = {"authorization": f"Bearer {token}"}
            assert http.get("/api/v1/info", headers=bearer).status_code == 200
            who = http.get("/api/v1/whoami", headers=bearer).json()
            assert (who["operator"], who["role"]) == ("carol", "admin")
        token_log = embedded.log_dir / "embedded-token.log"
        assert not token_log.exists() or token not in token_log.read_text()
    finally:
        embedded.stop()
    assert all(child.poll() is not None for child in children)
    assert not embedded.kubeconfig.exists()


def test_an_embedded_token_command_that_fails_is_reported_and_no_backend_starts(
    tmp_path: Path,
) -> None:
    embedded = EmbeddedCluster(fleet="empty", seed=2)
    (tmp_path / "a-file").write_text("")
    embedded.database_url = f"sqlite:///{tmp_path / 'a-file' / 'opsconsole.db'}"  # no database
    embedded.start()
    try:
        deadline = time.monotonic() + 90
        while embedded.error is None:
            assert time.monotonic() < deadline, "the failure was never reported"
            time.sleep(0.1)
        progress = embedded.progress()
        assert progress.error is not None and progress.token is None
        assert progress.error.startswith("the embedded token command exited (code ")
        assert "embedded-token.log" in progress.error
        assert len(embedded._children) == 1  # the sandbox; never a backend without a token
    finally:
        embedded.stop()


def test_an_embedded_child_that_fails_is_reported_with_its_own_message() -> None:
    embedded = EmbeddedCluster(fleet="empty", seed=2)
    with socket.socket() as taken:  # someone else holds the backend's port
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", embedded.backend_port))
        taken.listen()
        assert embedded.progress().stage == "starting the sandbox"
        embedded.start()
        try:
            deadline = time.monotonic() + 90
            while embedded.error is None:
                assert time.monotonic() < deadline, "the failure was never reported"
                time.sleep(0.1)
        finally:
            embedded.stop()
    progress = embedded.progress()
    assert progress.stage == "starting the backend"
    assert progress.error is not None
    assert progress.error.startswith("the embedded backend exited (code ")
    assert "address already in use" in progress.error.lower(), progress.error
    assert "embedded-serve.log" in progress.error


def test_console_without_a_terminal_says_so_instead_of_spinning() -> None:
    proc = opsconsole("--backend", "http://127.0.0.1:9", stdin=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "needs a terminal" in err


def test_token_help_shows_its_verbs() -> None:
    proc = opsconsole("token", "--help")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.startswith("usage: opsconsole token") and "{create,list,revoke}" in out
