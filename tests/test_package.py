"""The package namespace: lazy attributes resolve to the documented objects."""

import importlib
import os
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


def test_fit_from_a_saved_program_needs_no_pymc(tmp_path):
    """The default model is sampled from its JAX density: the first process needs NumPyro
    but never imports PyMC or PyTensor; a second one with the same model loads the saved
    program without NumPyro, and its draws equal the first process's."""
    code = (
        "import sys, groupcov; from groupcov.datasets import two_groups; "
        "sim = two_groups(n_per_group=50, seed=1); "
        "m = groupcov.GroupCovModel(sim.data, group='group', features=sim.features); "
        "r = m.fit(draws=20, tune=20, chains=2, random_seed=3, progressbar=False); "
        "print([k for k in ('pymc', 'pytensor', 'numpyro') if k in sys.modules]); "
        "print(float(r.idata.posterior['cov'].sum()))"
    )
    env = {**os.environ, "GROUPCOV_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, env=env).stdout.splitlines()
        for _ in range(2)
    ]
    assert runs[0][0] == "['numpyro']"  # the first process traced the sampler
    assert runs[1][0] == "[]"
    assert runs[0][1] == runs[1][1]
