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



def test_xla_flags_add_devices_and_leave_ynnpack_out_where_jaxlib_takes_it(monkeypatch):
    """The YNNPACK flag only for jaxlib releases known to have it (an unknown flag aborts
    the process), and never over a user's own setting."""
    from groupcov import _config

    count = max(4, os.cpu_count() or 1)
    assert _config.xla_flags("", True).split() == [
        f"--xla_force_host_platform_device_count={count}",
        "--xla_cpu_experimental_ynn_fusion_type="]
    assert _config.xla_flags("--other", False).split() == [
        "--other", f"--xla_force_host_platform_device_count={count}"]
    mine = "--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type=x"
    assert _config.xla_flags(mine, True) == mine
    for version, takes in (("0.10.0", True), ("0.10.2", True), ("0.11.0", False)):
        monkeypatch.setattr("importlib.metadata.version", lambda name, v=version: v)
        assert _config._takes_ynn_flag() is takes
