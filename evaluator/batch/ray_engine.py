"""``--engine ray``: the same batch as a Ray Data pipeline, for more than one box.

::

    read_text(JSONL) / read_parquet  ──►  map_batches(intake + decode)      CPU tasks
                                     ──►  map_batches(JudgeActor)            actor pool: one Evaluator
                                                                              (one model set) per actor,
                                                                              num_gpus=1 each on --device cuda
                                     ──►  driver: append to the JSONL output (the same ResultsFile as
                                          the local engine: atomic batches, resume, Parquet at the end)

Results are identical to the local engine's for the same manifest: the same row ids,
evaluation ids (uuid5 of the row id), decode code, judges and record format; only the
order of lines and the clock fields differ (compare with ``batch.comparable``).

Inputs: JSONL is read with ``read_text`` (one row per line, parsed by the same
``manifest.jsonl_row``, so a bad line becomes a rejected record, not a failed job) and
Parquet with ``read_parquet``; both take any path Ray's filesystems take (local, ``s3://``,
``gs://``). CSV and directories are listed on the driver and handed to Ray with
``from_items`` (driver memory grows with the row count there).

Limits, said plainly: rejected records carry no ``batch_line`` (Ray does not know line
numbers); a row id repeated in the manifest is evaluated on whichever worker sees it and
only the first result to reach the driver is kept; the set of finished ids is shipped to
the intake tasks through the object store.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from imagejury.batch.engine import (
    BatchOptions,
    ResultsFile,
    config_fingerprint,
    decode,
    encode_record,
    evaluation_id,
    evaluation_record,
    intake,
    judge_prepared,
    reconcile_settings,
)
from imagejury.batch.manifest import Manifest, jsonl_row, table_row
from imagejury.batch.progress import BatchProgress, BatchStats
from imagejury.core.config import EvaluatorConfig
from imagejury.errors import ConfigError

log = logging.getLogger(__name__)

#: environment a worker needs to behave like the driver (offline model lookups above all)
PASS_ENV = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HOME",
    "HF_HUB_CACHE",
    "TOKENIZERS_PARALLELISM",
    "OMP_NUM_THREADS",
)


class RayBatchError(ConfigError):
    """The Ray engine cannot run this (Ray missing, an input it cannot read)."""


# ---------------------------------------------------------------- stage 1: intake + decode (CPU tasks)
_DONE_CACHE: dict[str, set[str]] = {}


def _done_set(ref: Any) -> set[str]:
    import ray

    key = ref.hex()
    if key not in _DONE_CACHE:
        _DONE_CACHE.clear()
        _DONE_CACHE[key] = ray.get(ref)
    return _DONE_CACHE[key]


_DECODERS: dict[str, Any] = {}


def _decoder(config_json: str) -> Any:
    """An Evaluator used only for ``prepare`` (no models are loaded by decoding)."""
    from imagejury.core.pipeline import Evaluator

    if config_json not in _DECODERS:
        _DECODERS.clear()
        _DECODERS[config_json] = Evaluator(EvaluatorConfig.model_validate_json(config_json), allow_local_paths=True)
    return _DECODERS[config_json]


def intake_and_decode(
    batch: Any,
    *,
    kind: str,
    base_dir: str | None,
    defaults: dict[str, Any],
    config_json: str,
    config_fp: str,
    done_ref: Any,
) -> Any:
    """Rows in (``text`` lines, table columns, or pickled rows) → ``eid`` + pickled payload out.

    The payload is a rejected record (dict) or a ``PreparedItem`` whose image is decoded.
    """
    import pyarrow as pa

    base = Path(base_dir) if base_dir else None
    evaluator = _decoder(config_json)
    done = _done_set(done_ref)
    if kind == "jsonl":
        rows = [jsonl_row(t.strip(), 0, None, base) for t in batch.column("text").to_pylist() if t and t.strip()]
    elif kind == "parquet":
        rows = [table_row(cells, 0, None, base) for cells in batch.to_pylist()]
    else:
        rows = [pickle.loads(b) for b in batch.column("row").to_pylist()]
    eids, payloads = [], []
    for row in rows:
        eid = evaluation_id(row.row_id)
        if eid in done:
            continue
        it = intake(row, defaults, config_fp)
        if it.record is not None:
            payload: Any = it.record
        else:
            prepared = decode(evaluator, it)
            if prepared.item is not None:
                prepared.item.features = None  # type: ignore[assignment]  # a lock: rebuilt by run_prepared
            payload = (row.row_id, prepared, it.fingerprint)
        eids.append(eid)
        payloads.append(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"eid": pa.array(eids, pa.string()), "payload": pa.array(payloads, pa.large_binary())})


def _decode_remote_args() -> dict[str, Any]:
    return {"scheduling_strategy": "SPREAD"}


# ---------------------------------------------------------------- stage 2: judges (actor pool)
class JudgeActor:
    """One Evaluator — one set of models — per actor, reused for every batch it gets."""

    def __init__(self, config_json: str) -> None:
        from imagejury.core.pipeline import Evaluator

        self.evaluator = Evaluator(EvaluatorConfig.model_validate_json(config_json), allow_local_paths=True)
        self._reported: dict[str, float] = {}

    def __call__(self, batch: Any) -> Any:
        """Judge one batch. ``run_prepared`` is the one error-isolation policy: a row that
        breaks a judge fails alone; nothing is retried here."""
        import pyarrow as pa

        payloads = [pickle.loads(b) for b in batch.column("payload").to_pylist()]
        prepared = [p[1] for p in payloads if not isinstance(p, dict)]
        evaluations = iter(judge_prepared(self.evaluator, prepared) if prepared else [])
        out = []
        for p in payloads:
            record = p if isinstance(p, dict) else evaluation_record(next(evaluations), p[0], p[2])
            out.append(encode_record(record))
        # judge seconds since the last batch, on the first row (the driver sums them)
        now = dict(self.evaluator.judge_seconds)
        delta = {k: v - self._reported.get(k, 0.0) for k, v in now.items()}
        self._reported = now
        secs = [json.dumps(delta)] + ["{}"] * (len(out) - 1) if out else []
        return pa.table(
            {
                "eid": batch.column("eid"),
                "record": pa.array(out, pa.large_string()),
                "judge_seconds": pa.array(secs, pa.string()),
            }
        )


# ---------------------------------------------------------------- driver
def _absolute_sources(config: EvaluatorConfig) -> EvaluatorConfig:
    """Model paths made absolute: a worker's working directory is not the driver's."""
    m = config.models
    updates: dict[str, Any] = {}
    if m.clip and m.clip.startswith("local-dir:") and not os.path.isabs(m.clip[len("local-dir:") :]):
        updates["clip"] = "local-dir:" + os.path.abspath(m.clip[len("local-dir:") :])
    elif m.clip and os.path.exists(m.clip):
        updates["clip"] = os.path.abspath(m.clip)
    for key in ("face_model", "aesthetic_head"):
        value = getattr(m, key)
        if value and os.path.exists(value):
            updates[key] = os.path.abspath(value)
    return config.model_copy(update={"models": m.model_copy(update=updates)}) if updates else config


def _check_gpus(ray: Any, actors: int) -> None:
    """``--device cuda`` gives each judge actor one GPU; an actor that asks for a GPU the
    cluster does not have waits forever, so refuse at once instead (as the local engine
    refuses a device torch cannot see)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < actors:
        have = "no GPU" if gpus == 0 else f"{gpus} GPU(s)"
        raise RayBatchError(
            f"--device cuda gives each of the {actors} judge actor(s) one GPU, but the Ray cluster has {have}; "
            "use --device cpu, fewer --actors, or a cluster with GPUs (--ray-address)"
        )


def _source(ray: Any, manifest: Manifest) -> Any:
    if manifest.kind == "jsonl":
        return ray.data.read_text(str(manifest.path), drop_empty_lines=True)
    if manifest.kind == "parquet":
        return ray.data.read_parquet(str(manifest.path))
    rows = [{"row": pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)} for r in manifest.rows()]
    return ray.data.from_items(rows)


def run_ray_batch(
    config: EvaluatorConfig,
    manifest: Manifest,
    output: str | Path,
    options: BatchOptions,
    *,
    address: str | None = None,
    actors: int = 1,
    decode_cpus: float = 1.0,
) -> tuple[BatchStats, dict[str, float]]:
    """Run the batch on Ray; returns the run's tallies and the judges' summed seconds."""
    try:
        import ray
    except ImportError as exc:
        raise RayBatchError("--engine ray needs Ray Data: pip install 'imagejury[ray]'") from exc
    config_fp = config_fingerprint(config)  # before the paths are made absolute: the local engine's value
    config = _absolute_sources(config)
    config_json = config.model_dump_json()
    results = ResultsFile(output).open()  # the lock first, then the scan (see ResultsFile)
    try:
        done = reconcile_settings(
            results,
            manifest,
            results.done(retry_failed=options.retry_failed),
            defaults=options.defaults,
            config_fp=config_fp,
            overwrite=options.overwrite,
        )
    except BaseException:
        results.close()
        raise
    stats = BatchStats(total=manifest.count_rows())
    stats.already_done = len(done)
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    started_here = not ray.is_initialized()
    judge_seconds: dict[str, float] = {}
    try:
        if started_here:
            ray.init(
                address=address,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                runtime_env={"env_vars": env} if env else None,
            )
        gpu = config.models.device.startswith("cuda")
        if gpu:
            _check_gpus(ray, actors)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        done_ref = ray.put(done)
        ds = _source(ray, manifest)
        ds = ds.map_batches(
            intake_and_decode,
            batch_format="pyarrow",
            batch_size=max(options.batch_size, 1),
            fn_kwargs={
                "kind": manifest.kind,
                "base_dir": str(manifest.base_dir),
                "defaults": options.defaults,
                "config_json": config_json,
                "config_fp": config_fp,
                "done_ref": done_ref,
            },
            num_cpus=decode_cpus,
            # a remote-args function keeps Ray from fusing this stage into the judge
            # actors (it never fuses ops that have one), so decoding runs as its own CPU
            # tasks, spread over the cluster, ahead of the models instead of inside them
            ray_remote_args_fn=_decode_remote_args,
        )
        ds = ds.map_batches(
            JudgeActor,
            batch_format="pyarrow",
            batch_size=options.batch_size,
            fn_constructor_kwargs={"config_json": config_json},
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpu else 0,
            num_cpus=1,
        )
        written: set[str] = set()
        with BatchProgress(stats, enabled=options.progress) as progress:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=options.batch_size):
                records = []
                for eid, text, secs in zip(
                    batch.column("eid").to_pylist(),
                    batch.column("record").to_pylist(),
                    batch.column("judge_seconds").to_pylist(),
                ):
                    for k, v in json.loads(secs).items():
                        judge_seconds[k] = judge_seconds.get(k, 0.0) + v
                    if eid in written or eid in done:
                        stats.duplicates += 1
                        continue
                    written.add(eid)
                    records.append(json.loads(text))
                results.append(records)
                stats.add_many(records)
                progress.update()
    finally:
        results.close()
        if started_here:
            ray.shutdown()
    return stats, judge_seconds


__all__ = ["JudgeActor", "RayBatchError", "intake_and_decode", "run_ray_batch"]
