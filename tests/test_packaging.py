"""The built-in theme ships in the wheel and is found when sitegen is not installed editable."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from conftest import REPO


def test_theme_found_from_an_installed_wheel(tmp_path, make_project):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(wheels.glob("sitegen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "generator/_theme/base.html" in names and "generator/_theme/static/style.css" in names
    site = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(site)
    project = make_project()
    code = (
        "import generator, generator.templates as t, sys;"
        f"assert generator.__file__.startswith({str(site)!r}), generator.__file__;"
        "print(t.theme_dir());"
        "from generator.cli import main; sys.argv=['sitegen','-C',sys.argv[1],'build'];"
        "main()"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code, str(project)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(site / "generator" / "_theme"))
    assert (project / "output/index.html").is_file()
