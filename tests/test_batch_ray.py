"""``--engine ray`` on a local Ray (CPU): the same records as the local engine, JSONL and Parquet in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagejury.batch.engine import comparable
from imagejury.cli import main
from tests.test_batch_support import corrupt_and_missing, make_images, model_flags, records, write_jsonl

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
FLAGS = ["--no-progress", "--batch-size", "4", "--workers", "2"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray")
    rows = make_images(root / "img", 16, seed=11) + corrupt_and_missing(root / "img")[:2]
    return write_jsonl(root / "m.jsonl", rows, ["{broken json", json.dumps({"generated_image_url": "img/0000.jpg"})])


def _by_id(path: Path) -> dict[str, dict]:
    out = {}
    for r in records(path):
        assert r["id"] not in out
        out[r["id"]] = comparable(r)
    return out


def test_ray_engine_matches_the_local_engine(local_ray, manifest: Path, tmp_path: Path) -> None:
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["batch", str(manifest), "-o", str(local), *FLAGS, *model_flags()]) == 0
    assert main(["batch", str(manifest), "-o", str(on_ray), "--engine", "ray", *FLAGS, *model_flags()]) == 0
    a, b = _by_id(local), _by_id(on_ray)
    assert len(a) == 20
    assert a == b
    statuses = sorted(r["status"] for r in a.values())
    assert statuses.count("completed") == 16 and statuses.count("failed") == 2 and statuses.count("rejected") == 2

    # resume on Ray: nothing left to do, nothing written twice
    assert main(["batch", str(manifest), "-o", str(on_ray), "--engine", "ray", *FLAGS, *model_flags()]) == 0
    assert len(records(on_ray)) == 20


def test_ray_reads_parquet(local_ray, manifest: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in manifest.read_text().splitlines()[:18]]
    pq.write_table(pa.Table.from_pylist(rows), manifest.with_suffix(".parquet"))
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["batch", str(manifest.with_suffix(".parquet")), "-o", str(local), *FLAGS, *model_flags()]) == 0
    assert (
        main(
            [
                "batch",
                str(manifest.with_suffix(".parquet")),
                "-o",
                str(on_ray),
                "--engine",
                "ray",
                *FLAGS,
                *model_flags(),
            ]
        )
        == 0
    )
    a = _by_id(local)
    assert len(a) == 18 and a == _by_id(on_ray)


def test_ray_with_cuda_on_a_cluster_without_gpus_refuses_at_once(
    local_ray, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: the judge actors asked for a GPU the cluster did not have and waited forever
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray cluster has GPUs")
    out = tmp_path / "ray.jsonl"
    code = main(["batch", str(manifest), "-o", str(out), "--engine", "ray", "--device", "cuda", *FLAGS, *model_flags()])
    assert code == 3
    assert "the Ray cluster has no GPU" in capsys.readouterr().err
    assert not out.exists() or not records(out)
