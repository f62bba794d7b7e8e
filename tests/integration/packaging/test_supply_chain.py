"""What the image and CI install: pinned versions of every dependency, and an
init process as the image's PID 1. Read from the files themselves (no Docker
engine here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line}"
            out[_normal(name)] = version
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted.extend(extra)
    names = {_normal(re.split(r"[\[<>=~!; ]", spec, maxsplit=1)[0]) for spec in wanted}
    pinned = pins()
    assert names <= set(pinned), names - set(pinned)
    assert "hiredis" in pinned  # an extra of a dependency (redis[hiredis]) is pinned too


def test_the_image_and_ci_install_the_pinned_versions() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in dockerfile
    assert re.search(r"pip wheel [^\n]*--constraint constraints\.txt", dockerfile)
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"pip install [^\n]*-c constraints\.txt [^\n]*-e '\.\[test\]'", ci)


def test_the_image_runs_under_an_init_process() -> None:
    """tini forwards signals and reaps the local target's children."""
    dockerfile = (REPO / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "apt-get install -y --no-install-recommends tini" in final_stage
    assert 'ENTRYPOINT ["tini", "--", "tidegate"]' in final_stage
    assert "USER 10001:10001" in final_stage


def test_the_image_carries_the_tracing_extra() -> None:
    """Tracing is one OTEL_* variable away in the image: the otel extra's
    wheels are built and installed with the project's."""
    build_stage, final_stage = (REPO / "Dockerfile").read_text().split("\nFROM ")[1:]
    assert re.search(
        r'pip wheel [^\n]*\\\n\s*"\$\(ls /wheels/tidegate-\*\.whl\)\[otel\]"', build_stage
    )
    assert "--find-links /wheels 'tidegate[otel]'" in final_stage


def test_the_image_build_has_every_file_the_wheel_is_built_from() -> None:
    """The build stage copies each package the wheel includes, and the
    licence file it declares (without it the build itself fails)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    build_stage = (REPO / "Dockerfile").read_text().split("\nFROM ")[1]
    copied = set(re.findall(r"^COPY (?!--from)(.+?) \S+$", build_stage, re.MULTILINE))
    sources = {part for line in copied for part in line.split()}
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    assert "shell" in packages
    for name in [*packages, *pyproject["project"]["license-files"]]:
        assert name in sources, (name, sorted(sources))
