"""The package namespace: lazy attributes resolve to the documented objects."""

import importlib
import pkgutil
import subprocess
import sys

import groupcov


def test_public_names_survive_importing_every_submodule():
    # a submodule named like a lazy attribute would replace it once imported
    for info in pkgutil.walk_packages(groupcov.__path__, "groupcov."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    for name in groupcov.__all__:
        obj = getattr(groupcov, name)
        assert not isinstance(obj, type(groupcov)), f"groupcov.{name} is a module"
    assert callable(groupcov.compare) and groupcov.compare.__name__ == "compare"


def test_import_is_light():
    code = (
        "import sys, groupcov; "
        "heavy = [m for m in ('pymc', 'pytensor', 'jax', 'arviz') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
