"""The evaluation pipeline: request → media → plan → shared features → judges → verdict.

``Evaluator`` is the library entry point. ``prepare()`` (decode, the I/O-bound part) and
``run_prepared()`` (the judges, the compute-bound part) are separate so that the batch
runner can decode in worker threads ahead of the models; ``evaluate()`` and
``evaluate_many()`` chain them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imagejury.core.config import EvaluatorConfig
from imagejury.core.intake.media import Decoder, MediaLimits, load_request_images
from imagejury.core.planning import Plan, PlannedJudge, plan_item, unknown_values
from imagejury.core.presets import PRESETS
from imagejury.core.schema import Evaluation, EvaluationRequest
from imagejury.core.verdict.action import decide_action
from imagejury.core.verdict.aggregate import SkippedCheck, aggregate
from imagejury.core.verdict.result import EvaluationMeta, build_evaluation, failed_evaluation, job_class_of
from imagejury.errors import FetchFailedError, ImagejuryError, InvalidMediaError, InvalidRequestError, ProcessingError
from imagejury.judges.base import Judge
from imagejury.judges.calibration import recalibrate
from imagejury.judges.features import FeatureCache
from imagejury.judges.registry import JudgeRegistry, judge_registry
from imagejury.judges.taxonomy import (
    REFERENCE_KINDS,
    TASK_TYPES,
    canonical_reference_kind,
    known_values,
    resolve_task_type,
)
from imagejury.judges.types import Directives, JudgeItem, JudgeResult, Reference
from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.provider import ModelSet
from imagejury.models.registry import ModelRegistry, default_registry

log = logging.getLogger(__name__)


@dataclass
class PreparedItem:
    """A request after intake: a judge item ready for the models, or the error that stopped it."""

    request: EvaluationRequest
    meta: EvaluationMeta
    item: JudgeItem | None = None
    error: ImagejuryError | None = None
    started: float = field(default_factory=time.perf_counter)
    decode_ms: float = 0.0
    # unknown task type / reference kinds (planning.unknown_values), for check_summary
    input_issues: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _JudgingRun:
    """What ``run_prepared`` works through: per item position, its plan, the checks that
    were skipped, the error that failed it, and its judges' results; per (job class,
    judge), the positions that judge votes on."""

    plans: dict[int, Plan] = field(default_factory=dict)
    skipped: dict[int, list[SkippedCheck]] = field(default_factory=dict)
    failures: dict[int, ImagejuryError] = field(default_factory=dict)
    results: dict[int, list[JudgeResult]] = field(default_factory=dict)
    groups: dict[tuple[str, str], list[tuple[int, PlannedJudge]]] = field(default_factory=dict)

    def fail(self, idx: int, error: ImagejuryError) -> None:
        """The first error an item meets is the one it reports."""
        self.failures.setdefault(idx, error)


class Evaluator:
    """Evaluate generated images with a jury of judges; answers with the API's JSON.

    One ``Evaluator`` holds one set of models (loaded lazily, once, on first use) and the
    judge instances for each job class; keep it and reuse it. It is thread-safe.

    Args:
        config: models, evaluation, media and per-judge settings (``EvaluatorConfig``;
            ``EvaluatorConfig.from_file("imagejury.toml")`` reads a TOML file).
        registry: the model registry to load through (default: the process-wide one, so
            two evaluators with the same models share one copy).
        judges: the judge registry (default: every judge of the ``imagejury.judges``
            entry-point group).
        allow_local_paths: accept local file paths as image URLs (the library and CLI do;
            the HTTP service does not).

    Methods: ``evaluate(request)`` for one request, ``evaluate_many(requests)`` for many
    (batched through the judges: one forward pass per image and model), ``warmup()`` to
    load every model up front. A request is a dict (or ``EvaluationRequest``) shaped like
    the API's request body; the answer is an ``Evaluation`` whose ``to_api()`` is the
    API's response JSON. Invalid requests raise ``InvalidRequestError``; images that cannot
    be used and models that cannot run give a ``failed`` evaluation with a
    ``failure_code``.

    >>> ev = Evaluator(EvaluatorConfig.model_validate({"evaluation": {"allow_missing_models": True}}))
    >>> ev.evaluate({"generated_image_url": "photo.jpg", "task_type": "headshot"}).overall_passed
    """

    def __init__(
        self,
        config: EvaluatorConfig | None = None,
        *,
        registry: ModelRegistry | None = None,
        judges: JudgeRegistry | None = None,
        allow_local_paths: bool = True,
    ) -> None:
        self.config = config or EvaluatorConfig()
        self.registry = registry or default_registry()
        self.judge_registry = judges or judge_registry
        self.allow_local_paths = allow_local_paths
        self._lock = threading.Lock()
        self._model_sets: dict[str, ModelSet] = {}
        self._pools: dict[str, dict[str, Judge]] = {}
        self.judge_seconds: dict[str, float] = {}  # cumulative, for summaries and benchmarks
        settings = self.config.models.settings()
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)

    # -- models and judges ------------------------------------------------------
    def model_set(self, job_class: str) -> ModelSet:
        with self._lock:
            if job_class not in self._model_sets:
                self._model_sets[job_class] = ModelSet(self.config.models.settings(), self.registry, job_class)
            return self._model_sets[job_class]

    def pool(self, job_class: str) -> dict[str, Judge]:
        """The judge instances for a job class (built once; models load on warmup)."""
        with self._lock:
            if job_class in self._pools:
                return self._pools[job_class]
        names = set().union(*(p.weights for p in PRESETS.values())) | self._enabled_extra()
        pool: dict[str, Judge] = {}
        model_set = self.model_set(job_class)
        known = set(self.judge_registry.names())
        for name in sorted(names):
            conf = dict(self.config.judges.get(name, {}))
            if conf.pop("enabled", True) is False:
                continue
            if name not in known:
                log.warning("judge '%s' is in a preset but not installed (entry-point group imagejury.judges)", name)
                continue
            cls = self.judge_registry.get(name)
            pool[name] = cls(conf, model_set)
        with self._lock:
            self._pools.setdefault(job_class, pool)
            return self._pools[job_class]

    def _enabled_extra(self) -> set[str]:
        return {n for n, c in self.config.judges.items() if c.get("enabled") is True}

    def _disabled(self) -> set[str]:
        return {n for n, c in self.config.judges.items() if c.get("enabled") is False}

    def _extra_weights(self, pool: dict[str, Judge]) -> dict[str, float]:
        return {n: pool[n].weight for n in self._enabled_extra() if n in pool}

    def warmup(self, job_classes: Iterable[str] = ("standard",)) -> dict[str, str]:
        """Load every model the job classes' judges need; returns judge → problem."""
        problems: dict[str, str] = {}
        for jc in job_classes:
            for name, judge in self.pool(jc).items():
                try:
                    judge.warmup()
                except ModelError as exc:
                    problems[f"{name} ({jc})"] = str(exc)
        return problems

    # -- intake -------------------------------------------------------------------
    @staticmethod
    def parse_request(request: EvaluationRequest | dict[str, Any]) -> EvaluationRequest:
        if isinstance(request, EvaluationRequest):
            return request
        try:
            return EvaluationRequest.model_validate(request)
        except ValidationError as exc:
            raise InvalidRequestError(_validation_message(exc)) from exc

    def media_limits(self, *, allow_local_paths: bool | None = None) -> MediaLimits:
        m = self.config.media
        return MediaLimits(
            max_pixels=m.max_pixels,
            max_bytes=m.max_bytes,
            fetch_timeout_s=m.fetch_timeout_s,
            allow_loopback_urls=m.allow_loopback_urls,
            allow_local_paths=self.allow_local_paths if allow_local_paths is None else allow_local_paths,
            draft_size=(d, d) if (d := self.config.evaluation.draft_size) else None,
        )

    def check_known_values(self, req: EvaluationRequest) -> list[dict[str, Any]]:
        """``check_known_values`` under this evaluator's ``[evaluation] strict`` setting."""
        return check_known_values(req, strict=self.config.evaluation.strict)

    def prepare(
        self,
        request: EvaluationRequest | dict[str, Any],
        meta: EvaluationMeta | None = None,
        *,
        base_dir: Path | None = None,
        asset_resolver: Callable[[str], Path] | None = None,
        allow_local_paths: bool | None = None,
        decoder: Decoder | None = None,
    ) -> PreparedItem:
        """Validate and decode. Media errors become a failed item, never an exception.

        ``decoder`` replaces the Pillow decode of the image bytes under the same limits
        (the batch engine passes its GPU JPEG decoder when the device is CUDA)."""
        req = self.parse_request(request)
        issues = self.check_known_values(req)
        meta = meta or EvaluationMeta.new(req)
        prepared = PreparedItem(request=req, meta=meta, input_issues=issues)
        limits = self.media_limits(allow_local_paths=allow_local_paths)
        t0 = time.perf_counter()
        try:
            main, decoded_refs = load_request_images(
                req, limits, asset_resolver=asset_resolver, base_dir=base_dir, decoder=decoder
            )
            refs = [
                Reference(
                    kind=canonical_reference_kind(ref.kind or "identity"),
                    image=d.image,
                    description=ref.description,
                    key=d.key,
                )
                for ref, d in zip(req.reference_images, decoded_refs)
            ]
        except (InvalidMediaError, FetchFailedError) as exc:
            prepared.error = exc
            return prepared
        finally:
            prepared.decode_ms = (time.perf_counter() - t0) * 1000
        directives = Directives()
        if req.evaluation_instructions:
            from imagejury.judges.rubric import parse_directives

            directives = parse_directives(req.evaluation_instructions)
        prepared.item = JudgeItem(
            item_id=meta.id,
            image=main.image,
            image_key=main.key,
            original_size=main.original_size,
            # an alias plans and judges as its task type; an unknown value stays as given (reported)
            task_type=resolve_task_type(req.task_type).canonical or req.task_type,
            task_description=req.task_description,
            prompt=req.generation_prompt,
            instructions=req.evaluation_instructions,
            attributes=dict(req.input_attributes or {}),
            references=refs,
            job_class=job_class_of(req),
            directives=directives,
        )
        return prepared

    # -- judging --------------------------------------------------------------------
    def run_prepared(self, prepared: Sequence[PreparedItem]) -> list[Evaluation]:
        """Judge prepared items together: each judge sees them as one batch, and every
        model's image forward pass runs once per image through the shared cache.

        The one error-isolation policy of imagejury: whatever breaks while judging one
        item (a judge, a model, the verdict) fails that item alone with
        ``processing_failed``; this method does not raise for a single item's sake, so
        batch, Ray and the service worker need no retries of their own."""
        cache = FeatureCache()
        for p in prepared:
            if p.item is not None:
                p.item.features = cache
        run = self._plan_all(prepared)
        for (_job_class, name), members in run.groups.items():
            self._run_group(run, name, members, prepared)
        return [self._finish(idx, p, run) for idx, p in enumerate(prepared)]

    def _plan_all(self, prepared: Sequence[PreparedItem]) -> _JudgingRun:
        """Plan every live item and group the planned judges by (job class, judge)."""
        run = _JudgingRun()
        disabled = self._disabled()
        extra_weights: dict[str, dict[str, float]] = {}  # per job class: the config's extra judges
        for idx, p in enumerate(prepared):
            if p.item is None:
                continue
            job_class = p.item.job_class
            pool = self.pool(job_class)
            if job_class not in extra_weights:
                extra_weights[job_class] = self._extra_weights(pool)
            plan = plan_item(p.item, pool, extra_weights[job_class], disabled)
            run.plans[idx], run.skipped[idx], run.results[idx] = plan, [], []
            for name in plan.not_installed:
                reason = f"judge '{name}' is not installed (entry-point group imagejury.judges)"
                if self.config.evaluation.allow_missing_models:
                    run.skipped[idx].append(SkippedCheck(name, "unknown", reason))
                else:
                    run.fail(idx, ProcessingError(reason))
            for pj in plan.judges:
                run.groups.setdefault((job_class, pj.judge.name), []).append((idx, pj))
        return run

    def _run_group(
        self, run: _JudgingRun, name: str, members: list[tuple[int, PlannedJudge]], prepared: Sequence[PreparedItem]
    ) -> None:
        """Warm one judge up and run it over the items it applies to."""
        judge = members[0][1].judge
        if not self._warm(run, judge, members):
            return
        todo = [(i, pj) for i, pj in members if i not in run.failures]
        for out_idx, pj, res in self._run_judge(judge, todo, prepared, run):
            # a judge that found nothing to check votes with weight 0 ("not voted");
            # otherwise the plan's weight (preset, config, rubric priority) applies
            res.weight = pj.weight if res.weight > 0 else 0.0
            res.critical = pj.critical
            if judge.config.calibration:  # thresholds fitted by `imagejury calibrate`
                res = recalibrate(res, judge.threshold_for, is_gate=judge.is_gate)
            run.results[out_idx].append(res)

    def _warm(self, run: _JudgingRun, judge: Judge, members: list[tuple[int, PlannedJudge]]) -> bool:
        """Load the judge's models. A missing model skips the judge (with
        ``allow_missing_models``) or fails its items; returns whether the judge can run."""
        try:
            judge.warmup()
            return True
        except ModelUnavailableError as exc:
            for idx, pj in members:
                if self.config.evaluation.allow_missing_models:
                    short = f"model {exc.model} not available"
                    run.skipped[idx].append(
                        SkippedCheck(
                            judge.name,
                            judge.category,
                            short,
                            str(exc),
                            critical=pj.critical,
                            gate=judge.is_gate,
                            model=exc.model,
                        )
                    )
                else:
                    run.fail(
                        idx,
                        ProcessingError(
                            f"judge '{judge.name}' needs a model that is not available here: {exc} "
                            "(or pass --allow-missing-models to run without it)"
                        ),
                    )
        except ModelError as exc:
            for idx, _ in members:
                run.fail(idx, ProcessingError(f"judge '{judge.name}' could not load its model: {exc}"))
        return False

    def _run_judge(
        self,
        judge: Judge,
        members: list[tuple[int, PlannedJudge]],
        prepared: Sequence[PreparedItem],
        run: _JudgingRun,
    ) -> list[tuple[int, PlannedJudge, JudgeResult]]:
        """Run one judge over its items in batches; isolate a failing item by retrying singly."""
        out: list[tuple[int, PlannedJudge, JudgeResult]] = []
        size = self.config.evaluation.batch_size
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            items = [prepared[i].item for i, _ in chunk]
            t0 = time.perf_counter()
            try:
                res = judge.judge(items)  # type: ignore[arg-type]
                if len(res) != len(items):
                    raise RuntimeError(f"returned {len(res)} results for {len(items)} items")
                out += [(i, pj, r) for (i, pj), r in zip(chunk, res)]
            except Exception:  # noqa: BLE001 - isolate the item that breaks the judge
                log.exception("judge %s failed on a batch of %d; retrying one by one", judge.name, len(items))
                for (i, pj), item in zip(chunk, items):
                    try:
                        out.append((i, pj, judge.judge([item])[0]))  # type: ignore[list-item]
                    except Exception as exc:  # noqa: BLE001
                        log.exception("judge %s failed on %s", judge.name, prepared[i].meta.id)
                        run.fail(i, ProcessingError(f"judge '{judge.name}' failed: {type(exc).__name__}: {exc}"))
            self.judge_seconds[judge.name] = self.judge_seconds.get(judge.name, 0.0) + time.perf_counter() - t0
        return out

    def _finish(self, idx: int, p: PreparedItem, run: _JudgingRun) -> Evaluation:
        """One item's evaluation: failed with its error, or the verdict of its judges."""
        if p.item is None:
            return failed_evaluation(
                p.request, p.meta, p.error or ProcessingError("the item was not prepared"), p.started
            )
        if idx in run.failures:
            return failed_evaluation(p.request, p.meta, run.failures[idx], p.started)
        try:
            return self._verdict(p, run.plans[idx], run.results[idx], run.skipped[idx])
        except Exception as exc:  # noqa: BLE001 - one item's verdict must not take the batch with it
            log.exception("building the verdict of %s failed", p.meta.id)
            error = ProcessingError(f"the verdict could not be built: {type(exc).__name__}: {exc}")
            return failed_evaluation(p.request, p.meta, error, p.started)

    @staticmethod
    def _verdict(p: PreparedItem, plan: Plan, results: list[JudgeResult], skipped: list[SkippedCheck]) -> Evaluation:
        """Aggregate, decide the action and build the API object for one judged item."""
        assert p.item is not None
        # the plan's order, whatever else shared the batch: the same request gives the
        # same judges[] (and top_issues tie order) alone or in evaluate_many
        rank = {pj.judge.name: k for k, pj in enumerate(plan.judges)}
        res = sorted(results, key=lambda r: rank.get(r.name, len(rank)))
        verdict = aggregate(res, pass_threshold=plan.preset.pass_threshold, skipped=skipped)
        verdict.check_summary["preset"] = plan.preset.name
        verdict.check_summary["job_class"] = p.item.job_class
        verdict.check_summary["not_applicable"] = plan.not_applicable
        verdict.check_summary["ignored_by_rubric"] = [{"judge": n, "reason": r} for n, r in plan.ignored]
        verdict.check_summary["input_issues"] = list(p.input_issues)
        verdict.top_issues += [i["message"] for i in p.input_issues]
        if plan.notes or p.item.directives.notes:
            verdict.check_summary["notes"] = plan.notes + list(p.item.directives.notes)
        req = p.request
        asked = " ".join([req.evaluation_instructions or "", *(str(v) for v in (req.input_attributes or {}).values())])
        action = decide_action(verdict, res, req.generation_prompt, asked)
        return build_evaluation(p.request, p.meta, res, verdict, action, p.started)

    # -- conveniences -------------------------------------------------------------
    def evaluate(
        self, request: EvaluationRequest | dict[str, Any], meta: EvaluationMeta | None = None, **kw: Any
    ) -> Evaluation:
        """Evaluate one request. Invalid requests raise ``InvalidRequestError``; media and
        model failures come back as a ``failed`` evaluation with a ``failure_code``."""
        return self.run_prepared([self.prepare(request, meta, **kw)])[0]

    def evaluate_many(self, requests: Iterable[EvaluationRequest | dict[str, Any]], **kw: Any) -> list[Evaluation]:
        """Evaluate many requests, results in order. Media and model failures come back as
        failed evaluations; an invalid request raises ``InvalidRequestError`` naming its
        position (``requests[5]: ...``). Given a list, every request is validated before
        any image is decoded; given any other iterable (a generator), it is consumed a
        batch at a time like ``evaluate_iter``. Decoded images are held for one batch
        only, so memory does not grow with the number of requests."""
        if isinstance(requests, Sequence):
            requests = [self._parse_at(n, r) for n, r in enumerate(requests)]
        return list(self.evaluate_iter(requests, **kw))

    def evaluate_iter(self, requests: Iterable[EvaluationRequest | dict[str, Any]], **kw: Any) -> Iterator[Evaluation]:
        """Yield one evaluation per request, in input order, as each batch finishes.

        Reads ``batch_size`` requests from ``requests`` (any iterable, consumed lazily),
        decodes and judges them, yields their results and lets their images go before
        reading the next batch. An invalid request raises ``InvalidRequestError`` naming
        its position when it is reached (the results before it have been yielded)."""
        size = max(1, self.config.evaluation.batch_size)
        batch: list[EvaluationRequest] = []
        for n, request in enumerate(requests):
            batch.append(self._parse_at(n, request))
            if len(batch) == size:
                yield from self.run_prepared([self.prepare(r, **kw) for r in batch])
                batch = []
        if batch:
            yield from self.run_prepared([self.prepare(r, **kw) for r in batch])

    def _parse_at(self, position: int, request: EvaluationRequest | dict[str, Any]) -> EvaluationRequest:
        try:
            return self.parse_request(request)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"requests[{position}]: {exc.detail}", exc.errors) from exc


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "request"
        parts.append(f"{loc}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts)


__all__ = ["Evaluator", "EvaluationMeta", "ImagejuryError", "PreparedItem", "check_known_values", "summarize_problems"]


def summarize_problems(problems: dict[str, str]) -> list[str]:
    """``warmup()``'s problems, one line per distinct problem with the judges it stops.

    A missing CLIP stops six judges in two job classes; its how-to is said once, not
    twelve times."""
    by_problem: dict[str, list[str]] = {}
    for judge, problem in problems.items():
        by_problem.setdefault(problem, []).append(judge)
    return [f"{problem} [judges: {', '.join(judges)}]" for problem, judges in by_problem.items()]


def check_known_values(req: EvaluationRequest, *, strict: bool) -> list[dict[str, Any]]:
    """Unknown task type / reference kinds as issues; under ``[evaluation] strict =
    true`` an ``InvalidRequestError`` naming each value and the known ones instead."""
    issues = unknown_values(req.task_type, [r.kind for r in req.reference_images])
    if issues and strict:
        known = f"known task types: {known_values(TASK_TYPES)}; known reference kinds: {known_values(REFERENCE_KINDS)}"
        raise InvalidRequestError(
            "; ".join(i["message"] for i in issues) + f" ([evaluation] strict = true; {known})",
            [
                {
                    "loc": i["field"].replace("]", "").replace("[", ".").split("."),
                    "msg": i["message"],
                    "type": "unknown_value",
                }
                for i in issues
            ],
        )
    return issues
