"""Fit a judge's thresholds to labels, with stratified cross-validation and bootstrap intervals.

One *judge set* is every labelled vote of one judge measured by one model. Its decisive
measurements are flattened into arrays (item, key, value, direction) so a vote under any
thresholds is one ``bincount``: the number of measurements on their passing side, compared
with the number the decision rule needs ("all": every one, "any": one, "at_least:K": K).
A judge with several threshold keys is fitted by coordinate ascent over them.

The objective is stated, never implied: ``balanced_accuracy`` (the mean of the pass and
fail recalls, "positive" = the label says pass) or, with ``max_false_accept``, the best
balanced accuracy among thresholds that pass at most that fraction of the items labelled
fail (the strictest threshold when none does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagejury.errors import InvalidRequestError

MAX_CANDIDATES = 256  # thresholds tried per key (quantile midpoints beyond that)
SWEEPS = 3  # coordinate-ascent passes over a judge's keys


class TooFewLabels(InvalidRequestError):
    """Raised (and reported, not thrown across a layer) when a class has too few labels."""


@dataclass
class JudgeSet:
    """Labelled votes of one (judge, model), flattened."""

    judge: str
    model: str
    keys: list[str]  # threshold keys (a measurement name, or its prefix before ':')
    item: np.ndarray  # per measurement: the item it belongs to
    key: np.ndarray  # per measurement: index into keys
    value: np.ndarray
    sign: np.ndarray  # +1 higher is better, -1 lower is better
    stored_threshold: np.ndarray  # per measurement: the threshold the judge applied
    need: np.ndarray  # per item: passing measurements the rule needs
    label: np.ndarray  # per item: True = labelled pass
    stored_vote: np.ndarray  # per item: the judge's recorded vote

    @property
    def n(self) -> int:
        return len(self.label)

    def default_thresholds(self) -> np.ndarray:
        """Per key, the judge's own threshold (the median of those it applied)."""
        return np.array([float(np.median(self.stored_threshold[self.key == k])) for k in range(len(self.keys))])

    def votes(self, thresholds: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Votes of every item (or of ``items``) under per-key ``thresholds``."""
        ok = self.sign * (self.value - thresholds[self.key]) >= 0
        passes = np.bincount(self.item, weights=ok, minlength=self.n)
        votes = passes >= self.need
        return votes if items is None else votes[items]


@dataclass(frozen=True)
class Objective:
    max_false_accept: float | None = None

    @property
    def name(self) -> str:
        if self.max_false_accept is None:
            return "balanced_accuracy"
        return f"balanced_accuracy with false accepts <= {self.max_false_accept:g}"

    def score(self, votes: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Comparable score, higher is better: (feasible, metric)."""
        bacc = balanced_accuracy(votes, labels)
        if self.max_false_accept is None:
            return (1.0, bacc)
        far = false_accept_rate(votes, labels)
        return (1.0, bacc) if far <= self.max_false_accept + 1e-12 else (0.0, -far)


def balanced_accuracy(votes: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = labels, ~labels
    tpr = float(np.mean(votes[pos])) if pos.any() else 0.0
    tnr = float(np.mean(~votes[neg])) if neg.any() else 0.0
    return 0.5 * (tpr + tnr)


def false_accept_rate(votes: np.ndarray, labels: np.ndarray) -> float:
    """The share of items labelled fail that the judge passes."""
    neg = ~labels
    return float(np.mean(votes[neg])) if neg.any() else 0.0


def _candidates(values: np.ndarray) -> np.ndarray:
    """Midpoints between neighbouring distinct values, plus one beyond each end."""
    u = np.unique(values)
    if len(u) > MAX_CANDIDATES:
        u = np.unique(np.quantile(u, np.linspace(0, 1, MAX_CANDIDATES)))
    if len(u) == 1:
        return np.array([u[0] - 1e-6, u[0] + 1e-6])
    mids = (u[:-1] + u[1:]) / 2
    return np.concatenate([[u[0] - 1e-6], mids, [u[-1] + 1e-6]])


def fit_thresholds(js: JudgeSet, items: np.ndarray, objective: Objective) -> np.ndarray:
    """Per-key thresholds that maximise ``objective`` on ``items`` (coordinate ascent from
    the judge's own thresholds; a tie keeps the candidate closest to the current value)."""
    thr = js.default_thresholds()
    labels = js.label[items]
    in_items = np.isin(js.item, items)
    best = objective.score(js.votes(thr, items), labels)
    for _ in range(SWEEPS):
        improved = False
        for k in range(len(js.keys)):
            mine = in_items & (js.key == k)
            if not mine.any():
                continue
            for c in sorted(_candidates(js.value[mine]), key=lambda c: abs(c - thr[k])):
                trial = thr.copy()
                trial[k] = c
                score = objective.score(js.votes(trial, items), labels)
                if score > best:
                    best, thr, improved = score, trial, True
        if not improved:
            break
    return thr


def stratified_folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per item, each class spread evenly over the folds."""
    folds = np.empty(len(labels), dtype=int)
    for cls in (True, False):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        folds[idx] = np.arange(len(idx)) % k
    return folds


@dataclass
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass
class FitReport:
    """What ``calibrate`` prints and writes as provenance for one judge set."""

    judge: str
    model: str
    keys: list[str]
    n_pass: int
    n_fail: int
    before: list[float]
    after: list[float]
    folds: int
    cv_before: Interval  # balanced accuracy of the judge's own votes, over the same items
    cv_after: Interval  # balanced accuracy of out-of-fold votes under thresholds fitted on the other folds
    far_before: float
    far_after: float  # out-of-fold
    # the objective out of fold is at least the stored votes': only then is the fit written
    improves: bool = True


def calibrate_set(
    js: JudgeSet,
    objective: Objective,
    *,
    folds: int = 5,
    min_per_class: int = 8,
    bootstrap: int = 1000,
    seed: int = 0,
) -> FitReport:
    """Fit on every label; measure by stratified k-fold (before: the stored votes on the same
    items; after: each fold judged by thresholds fitted on the others) with a bootstrap
    interval (95 %, percentile) over items."""
    n_pass, n_fail = int(js.label.sum()), int((~js.label).sum())
    if min(n_pass, n_fail) < min_per_class:
        raise TooFewLabels(
            f"{js.judge} ({js.model or 'any model'}): {n_pass} labelled pass and {n_fail} labelled fail; "
            f"at least {min_per_class} of each are needed to fit and cross-validate a threshold"
        )
    rng = np.random.default_rng(seed)
    k = max(2, min(folds, n_pass, n_fail))
    fold_of = stratified_folds(js.label, k, rng)
    oof = np.empty(js.n, dtype=bool)
    for f in range(k):
        train, test = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        oof[test] = js.votes(fit_thresholds(js, train, objective), test)
    final = fit_thresholds(js, np.arange(js.n), objective)
    before_votes = js.stored_vote
    return FitReport(
        judge=js.judge,
        model=js.model,
        keys=list(js.keys),
        n_pass=n_pass,
        n_fail=n_fail,
        before=[float(x) for x in js.default_thresholds()],
        after=[float(x) for x in final],
        folds=k,
        cv_before=_bootstrap(before_votes, js.label, bootstrap, rng),
        cv_after=_bootstrap(oof, js.label, bootstrap, rng),
        far_before=false_accept_rate(before_votes, js.label),
        far_after=false_accept_rate(oof, js.label),
        improves=objective.score(oof, js.label) >= objective.score(before_votes, js.label),
    )


def _bootstrap(votes: np.ndarray, labels: np.ndarray, rounds: int, rng: np.random.Generator) -> Interval:
    point = balanced_accuracy(votes, labels)
    if rounds <= 0:
        return Interval(point, point, point)
    idx = rng.integers(0, len(labels), size=(rounds, len(labels)))
    v, lab = votes[idx], labels[idx]
    pos = lab.sum(axis=1)
    neg = (~lab).sum(axis=1)
    tpr = np.where(pos > 0, (v & lab).sum(axis=1) / np.maximum(pos, 1), 0.0)
    tnr = np.where(neg > 0, (~v & ~lab).sum(axis=1) / np.maximum(neg, 1), 0.0)
    stats = 0.5 * (tpr + tnr)
    low, high = np.percentile(stats, [2.5, 97.5])
    return Interval(point, float(low), float(high))
