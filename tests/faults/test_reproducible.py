"""Issue 11, finding 3: the same inputs give the same bytes wherever the cache, the output and the project are.

Two complete builds (fake toolchain for the engine step, the tiny model; an h100 engine target and the cpu
reference) in two cache locations, two output directories, two project directories and two copies of the
model: the artifacts are byte-identical, name none of those places, and publish to identical OCI digests
(a real registry). What varies (times, the command line as executed, paths) is in the report beside them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trtbuild.registry import RegistryClient, publish_artifact

from .faultlib import Project, make_project

pytestmark = pytest.mark.slow
TARGETS = ("h100-sxm", "cpu")


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = b"-> " + str(p.readlink()).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


@pytest.fixture
def second(tmp_path: Path, tiny_model: Path) -> Project:
    """Another project, model copy, cache and output: nothing shared with ``built`` but the inputs' content."""
    model = tmp_path / "elsewhere" / "the-model"
    shutil.copytree(tiny_model, model)
    project = make_project(tmp_path / "second-project", model, cache=tmp_path / "another" / "cache")
    r = project.compile()
    assert r.returncode == 0, r.stderr[-3000:]
    return project


def test_two_builds_in_two_places_are_byte_identical(built: Project, second: Project, registry) -> None:  # type: ignore[no-untyped-def]
    for target in TARGETS:
        fingerprints = [json.loads((p.out / f"{target}.report.json").read_text())["fingerprint"] for p in (built, second)]
        assert fingerprints[0] == fingerprints[1]
        a, b = _tree(built.out / target), _tree(second.out / target)
        assert a.keys() == b.keys() and {k for k in a if a[k] != b[k]} == set(), target
        places = [str(p) for p in (built.cache, second.cache, built.out, second.out, built.dir, second.dir)]
        for rel, data in b.items():
            for place in places:
                assert place.encode() not in data, f"{target}/{rel} names {place}"
    # The artifact says what it is built from and with, never when or where.
    engine = json.loads((second.out / "h100-sxm" / "engine" / "trtbuild-engine.json").read_text())
    assert not {"built_at", "wall_s", "command_line", "gpu_name"} & set(engine)
    assert "<checkpoint_dir>" in engine["command"] and "<output_dir>" in engine["command"]
    config = json.loads((second.out / "h100-sxm" / "engine" / "config.json").read_text())
    assert config["build_config"]["input_timing_cache"] == "h100-sxm-sm90.cache"
    # ... and those facts are in the report beside it.
    report = json.loads((second.out / "h100-sxm.report.json").read_text())
    facts = {s["stage"]: s["build"] for s in report["stages"]}
    assert str(second.cache) in " ".join(facts["engine"]["command_line"]) and facts["engine"]["wall_s"] >= 0
    assert facts["checkpoint"]["wall_s"] > 0 and facts["fetch"]["model_path"].endswith("the-model")

    client = RegistryClient(registry.host, plain_http=True)
    for target in TARGETS:
        one = publish_artifact(built.out / target, registry.ref(f"repro/one:{target}"), client=client)
        two = publish_artifact(second.out / target, registry.ref(f"repro/two:{target}-again"), client=client)
        assert one.digest == two.digest, target
