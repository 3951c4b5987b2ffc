"""Open set: the rule that answers ``unknown``, its calibration, and the false-accept rate a run may state.

An image is answered with its nearest class when its distance to that class is strictly below the class's
threshold, and ``unknown`` from it on. The unit that varies in use is the *class*: an unknown is an image of a
class nobody showed the run. So the rate is estimated as it will be met, on classes left out of the fit:

- **Impostors** are images whose own class is taken out of the search: their nearest *other* class is what the
  run would answer were their class not enrolled. They come in *groups*, one per class (and one per folder of a
  user's own impostors). Where the run indexes classes it did not train on, only those (and the user's) are
  impostors: the network packs its training classes apart, so their impostors are farther than a new class's
  (a threshold fitted on them accepted 32% of unseen digits at a stated 1%, issue #31).
- **The fit** is a class-weighted quantile ``q`` of the impostor scores (every group weighs the same). ``q`` is
  chosen by rotation: each group is left out in turn (in 10 folds beyond 10 groups), the cut is fitted on the
  others at ``q``, and the share of the left-out group below it is its held-out rate. The loosest ``q`` whose mean
  held-out rate is at most the target ``far`` is kept (below the nearest impostor, if need be), and the cut fitted
  on every group at that ``q``.
- **The estimate** is what that whole fit, ``q``'s choice included, lets through on a class it never saw: each
  group is left out in turn, the fit is made on the others, and the share of the left-out group accepted is its
  rate (:func:`nested_rates`). The stated rate is their mean, with a 95% Jeffreys interval over the groups
  (``n`` = the number of groups, the successes the sum of their rates): three classes cannot back a narrow
  interval, fifty can. With fewer than :data:`MIN_CLASSES` groups of classes it did not train on, no rate is
  stated, and :meth:`Calibration.statement` says why in one line.

Three rules are fitted. With :data:`CHOOSE_CLASSES` groups or more, among those whose estimate reaches
``far``, the one with the most known images right and accepted is kept (else the one with the lowest estimate).
With fewer, that choice is itself noise (on the bundled digits, choosing among three rules on three classes let
through twice what a fixed rule did), so :data:`DEFAULT_RULE` is kept, the one that held best on classes absent
from calibration (``bench/openset.py --rotate``, docs/results.md); the others' estimates are stored beside it.

- ``distance``: one distance for every class;
- ``margin``: the distance to the second-nearest class times one factor (an image between two classes is
  unknown);
- ``spread``: each class's own radius times one factor. A class's radius is the median distance of its held-out
  images to its supports; a class calibration did not see (enrolled later) gets the radius that a class it did
  not train on has with that many supports (:attr:`Calibration.shot_radii`, measured on the calibration images),
  so a class enrolled from one image gets a one-shot radius, not the trained classes'.

Every distance here is the one prediction computes: the classifier's :meth:`predict_embeddings`, restricted to
the image's own class (genuine) or to every other class (impostor). Every surface (``embed train``, ``embed
calibrate``, ``run.json``, ``embed eval --open-set``, the server) prints :meth:`Calibration.statement`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from embedder.config import check_far
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.index.support_index import SupportIndex

RULES = ("distance", "spread", "margin")
MIN_CLASSES = 3  # groups of classes it did not train on, below which no rate is stated
CHOOSE_CLASSES = 10  # groups from which the rule is chosen by its estimate; below, DEFAULT_RULE
DEFAULT_RULE = "spread"  # the rule that held best on classes absent from calibration (bench/openset.py --rotate)
FOLDS = 10  # beyond this many groups, they are left out in this many folds rather than one by one
LEVEL = 0.95  # of the interval over classes
# False-accept rates at which the run keeps the class-weighted impostor score, for `exceeded`.
RATES = np.round(np.concatenate([np.linspace(0, 0.05, 51), np.linspace(0.06, 1, 95)]), 4)


def genuine_and_impostor(
    classifier: FewShotClassifier, embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the embeddings of :func:`scored` rows: the distance prediction gives among their own class only
    (genuine) and among the other classes only (impostor). Others are left out."""
    genuine, _, impostor = _genuine_and_nearest_other(classifier, embeddings, labels)
    return genuine, impostor


def _genuine_and_nearest_other(
    classifier: FewShotClassifier, embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`genuine_and_impostor`, with the nearest other class of each row between the two."""
    labels, classes = np.asarray(labels), classifier.classes
    kept = scored(classifier, labels)
    genuine, other, impostor = np.empty(len(labels)), np.empty(len(labels), np.int64), np.empty(len(labels))
    for c in np.unique(labels[kept]).tolist():
        rows = labels == c
        genuine[rows] = classifier.predict_embeddings(embeddings[rows], classes=[c])[1]
        other[rows], impostor[rows] = classifier.predict_embeddings(
            embeddings[rows], classes=[o for o in classes if o != c]
        )
    return genuine[kept], other[kept], impostor[kept]


def scored(classifier: FewShotClassifier, labels: np.ndarray) -> np.ndarray:
    """Which of these labels :func:`genuine_and_impostor` scores: a class in the supports, beside another."""
    classes = classifier.classes
    return np.isin(labels, classes) if len(classes) > 1 else np.zeros(len(labels), bool)


# --- the held-out-class fit ---


def class_weighted_cut(groups: list[np.ndarray], q: float) -> float:
    """The score below which a class-weighted share of at most ``q`` of ``groups`` falls (every group weighs
    the same). A negative ``q`` cuts below the nearest impostor: ``(1 + q)`` times its score."""
    scores = np.concatenate(groups)
    if q < 0:
        return float(scores.min() * (1 + q))
    weights = np.concatenate([np.full(len(g), 1 / (len(g) * len(groups))) for g in groups])
    order = np.argsort(scores, kind="stable")
    scores, below = scores[order], np.cumsum(weights[order]) - weights[order]  # share strictly below each
    over = np.flatnonzero(below > q + 1e-12)
    return float(scores[over[0] - 1]) if len(over) else float(np.nextafter(scores[-1], np.inf))


def folds(n: int) -> list[np.ndarray]:
    """Which of ``n`` groups are left out together: each alone, or :data:`FOLDS` interleaved folds beyond."""
    k = min(n, FOLDS)
    return [np.flatnonzero(np.arange(n) % k == j) for j in range(k)]


def held_out_rates(groups: list[np.ndarray], q: float) -> np.ndarray:
    """Each group's share below the cut fitted at ``q`` on the groups outside its fold."""
    rates = np.empty(len(groups))
    for fold in folds(len(groups)):
        cut = class_weighted_cut([g for i, g in enumerate(groups) if i not in fold], q)
        rates[fold] = [float((groups[i] < cut).mean()) for i in fold]
    return rates


def nested_rates(groups: list[np.ndarray], far: float) -> np.ndarray:
    """Each group's share accepted by the whole fit (:func:`fit_cut`, then the cut) made without its fold: the
    rate a class absent from calibration meets, the choice of the tightness included."""
    rates = np.empty(len(groups))
    for fold in folds(len(groups)):
        rest = [g for i, g in enumerate(groups) if i not in fold]
        cut = class_weighted_cut(rest, fit_cut(rest, far)[0])
        rates[fold] = [float((groups[i] < cut).mean()) for i in fold]
    return rates


def class_mean(values: np.ndarray, labels: np.ndarray) -> float:
    """The mean over classes of each class's mean of ``values``."""
    return float(np.mean([values[labels == c].mean() for c in np.unique(labels)]))


def interval_over_classes(rates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """A Jeffreys interval for the rate of a new class, from ``len(rates)`` classes' rates (their sum the
    successes): its width is set by the number of classes, not of images."""
    from scipy.stats import beta

    n, x = len(rates), float(np.sum(rates))
    low = 0.0 if x == 0 else float(beta.ppf((1 - level) / 2, x + 0.5, n - x + 0.5))
    high = 1.0 if x == n else float(beta.ppf((1 + level) / 2, x + 0.5, n - x + 0.5))
    return low, high


@dataclass(frozen=True)
class Fit:
    """One rule's fit: the cut on its score, and its held-out rates."""

    q: float  # the class-weighted quantile the cut sits at
    cut: float  # scores strictly below are accepted
    held_out: list[float]  # per group, by the whole fit made without it (nested_rates); empty: one group
    accepted_known: float  # share of the known images right and below the cut


# The tightness grid: below the nearest impostor (down to half its score), then quantiles up to 3 far.
def _grid(far: float) -> np.ndarray:
    return np.concatenate([np.linspace(-0.5, 0, 26), np.linspace(0, 3 * far, 61)[1:]])


def fit_cut(groups: list[np.ndarray], far: float) -> tuple[float, list[float]]:
    """The loosest tightness (:func:`class_weighted_cut`'s ``q``, on :func:`_grid`) whose mean held-out rate is at
    most ``far``, and the held-out rates there (the tightest, when none reaches it); with one group, ``far``
    itself and no rates."""
    if len(groups) < 2:
        return far, []
    grid = _grid(far)
    best, rates = float(grid[0]), held_out_rates(groups, float(grid[0]))
    for q in grid[1:]:
        trial = held_out_rates(groups, float(q))
        if trial.mean() > far:
            break
        best, rates = float(q), trial
    return best, rates.tolist()


# --- the calibration ---


@dataclass(frozen=True)
class Calibration:
    """The open-set rule of a run, its held-out-class estimate, and what it was measured on."""

    far: float  # the target false-accept rate
    threshold: float  # the distance rule's cut; the others': the median known image's (what one number shows)
    rule: str = "distance"
    scale: float | None = None  # the cut on distance / :meth:`units`; None: ``threshold`` (the distance rule)
    radii: dict[str, float] = field(default_factory=dict)  # label -> radius, for the classes calibration saw
    shot_radii: list[list[float]] = field(default_factory=list)  # [supports, radius] of a class it did not see
    rate: float | None = None  # the held-out-class false-accept rate; None: too few classes to state one
    interval: list[float] | None = None  # its 95% interval over classes
    impostor_classes: int = 0  # groups behind the rate
    basis: str = "unseen"  # "unseen": classes it did not train on (and the user's); "trained": only those it did
    held_out: dict[str, float] = field(default_factory=dict)  # group -> its held-out rate
    accepted_known: float | None = None  # held-out images of indexed classes right and accepted (class mean)
    genuine: int = 0
    impostors: int = 0
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule -> its estimate and known share
    impostor_scores: list[float] = field(default_factory=list)  # the class-weighted impostor score at each rate
    rates: list[float] = field(default_factory=list)

    # --- the rule ---

    def radius(self, label: int, supports: int) -> float:
        """The radius of class ``label`` holding ``supports`` vectors, under the spread rule: measured, for a
        class calibration saw; else a class it did not train on with that many supports, but never wider than
        the widest class measured (the cut was fitted on those: impostors do not draw away as fast as a
        class's own images when supports are fewer)."""
        if str(label) in self.radii:
            return self.radii[str(label)]
        fitting = [r for n, r in self.shot_radii if n <= supports] or [self.shot_radii[0][1]]
        return float(min(fitting[-1], max(self.radii.values(), default=fitting[-1])))

    def units(self, labels: np.ndarray, supports: Mapping[int, int], second: np.ndarray | None) -> np.ndarray:
        """What the cut multiplies for each image, by the rule: 1 (distance), the nearest class's radius
        (spread), the distance to the second-nearest class (margin: ``second``)."""
        if self.rule == "margin":
            if second is None:
                raise ValueError("the margin rule needs each image's distance to its second-nearest class")
            return np.asarray(second, float)
        if self.rule == "spread":
            return np.array([self.radius(int(c), supports.get(int(c), 1)) for c in np.asarray(labels)], float)
        return np.ones(len(labels))

    @property
    def cut(self) -> float:
        """The cut on the rule's score (distance / units)."""
        return self.threshold if self.scale is None else self.scale

    def thresholds(
        self, labels: np.ndarray, supports: Mapping[int, int], second: np.ndarray | None = None
    ) -> np.ndarray:
        """The distance from which an image whose nearest class is ``labels[i]`` is unknown."""
        return self.cut * self.units(labels, supports, second)

    def exceeded(self, distance: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """The class-weighted share of calibration impostors whose score came no closer than this one: near 1
        close to a support, near 0 far from all (the ``confidence`` a prediction shows)."""
        if not self.impostor_scores:
            return np.full(np.shape(distance), np.nan)
        score = np.asarray(distance) / np.asarray(thresholds) * self.cut
        return 1.0 - np.interp(score, self.impostor_scores, self.rates)

    # --- words ---

    def statement(self) -> str:
        """The one line every surface prints: the rule, its cut, and the rate on classes absent from its fit."""
        unit = {"spread": " x each class's radius", "margin": " x the second-nearest class's distance"}
        head = f"open set ({self.rule} rule: unknown from {self.cut:.3f}{unit.get(self.rule, '')})"
        if self.rate is None or self.interval is None:
            unseen = self.impostor_classes if self.basis == "unseen" else 0
            return (
                f"{head}: no false-accept rate is stated, {unseen} class(es) it did not train on to hold out "
                f"({MIN_CLASSES} needed); fitted for {self.far:.1%}"
            )
        low, high = self.interval
        return (
            f"{head}: false-accept rate {self.rate:.1%} on classes absent from calibration (95% interval "
            f"{low:.1%}-{high:.1%} over {self.impostor_classes} classes; target {self.far:.1%})"
        )

    def known_statement(self) -> str:
        """What calibration measured on the known side, in a clause."""
        if self.accepted_known is None:
            return f"from {self.genuine} held-out images"
        return (
            f"held-out images of known classes right and accepted: {self.accepted_known:.1%} "
            f"(mean over classes, {self.genuine} images)"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """A stored calibration; one from before the held-out-class fit (0.6) reads as the distance rule with
        no stated rate."""
        known = {f.name for f in fields(cls)}
        if "rule" not in data and "impostor_distances" in data:
            data = {
                "far": data["far"],
                "threshold": data["threshold"],
                "accepted_known": data.get("true_accept_rate"),
                "genuine": data.get("genuine", 0),
                "impostors": data.get("impostors", 0),
                "impostor_scores": data["impostor_distances"],
                "rates": data["rates"],
                "basis": "trained",
            }
        if not {"far", "threshold"} <= set(data) or set(data) - known:
            raise TypeError("malformed calibration")
        return cls(**data)


def stored_statement(stored: dict[str, Any] | None) -> str:
    """:meth:`Calibration.statement` of a run's stored ``open_set`` entry, or why there is none."""
    if not stored:
        return "no threshold (trained without held-out images, or before calibration): `embed calibrate` fits one"
    return Calibration.from_dict(stored).statement()


@dataclass(frozen=True)
class CalibrationImages:
    """What calibration scores: held-out images of indexed classes, and the user's own impostors."""

    embeddings: np.ndarray  # of images of indexed classes, none of them a support
    labels: np.ndarray
    trained: list[int]  # the classes the network trained on
    user: dict[str, np.ndarray] = field(default_factory=dict)  # group name -> embeddings of no indexed class


def supports_per_class(index: SupportIndex) -> dict[int, int]:
    labels, counts = np.unique(index.labels, return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist(), strict=True))


def shot_radii(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> list[list[float]]:
    """``[[n, radius], ...]``: the median distance of a class's image to the nearest of ``n`` others of its
    class drawn as supports, for n = 1, 2, 3, 5, 10, 20, over the classes given (exact cosine: the radius a
    class enrolled from ``n`` images would have)."""
    rng, table = np.random.default_rng(seed), []
    for n in (1, 2, 3, 5, 10, 20):
        medians = []
        for c in np.unique(labels).tolist():
            vectors = embeddings[labels == c]
            if len(vectors) <= n:
                continue
            order = rng.permutation(len(vectors))
            similarity = vectors[order[n:]] @ vectors[order[:n]].T
            medians.append(float(np.median(np.sqrt(np.maximum(0, 2 - 2 * similarity.max(1))))))
        if medians:
            table.append([n, float(np.median(medians))])
    return table


def second_nearest(
    classifier: FewShotClassifier, embeddings: np.ndarray, first: np.ndarray, classes: list[int] | None = None
) -> np.ndarray:
    """Each image's distance to its nearest class among ``classes`` (all by default) other than ``first[i]``;
    inf where there is none."""
    candidates, second = classifier.classes if classes is None else classes, np.full(len(first), np.inf)
    for c in np.unique(first).tolist():
        rows, others = first == c, [o for o in candidates if o != c]
        if others:
            second[rows] = classifier.predict_embeddings(embeddings[rows], classes=others)[1]
    return second


def limits(
    calibration: Calibration,
    classifier: FewShotClassifier,
    embeddings: np.ndarray,
    predicted: np.ndarray,
    classes: list[int] | None = None,
) -> np.ndarray:
    """The threshold of each image whose nearest class among ``classes`` is ``predicted``: what prediction and
    the open-set evaluation compare its distance with."""
    second = second_nearest(classifier, embeddings, predicted, classes) if calibration.rule == "margin" else None
    return calibration.thresholds(predicted, supports_per_class(classifier.index), second)


@dataclass(frozen=True)
class _Scored:
    """Images as a rule sees them: the nearest class (among some), its distance, the second-nearest's."""

    nearest: np.ndarray
    distance: np.ndarray
    second: np.ndarray

    def score(self, trial: Calibration, supports: Mapping[int, int]) -> np.ndarray:
        return self.distance / trial.units(self.nearest, supports, self.second)


def _impostors(classifier: FewShotClassifier, embeddings: np.ndarray, own: int) -> _Scored:
    """Images of class ``own`` (-1: of none) scored with their class out of the search."""
    others = [c for c in classifier.classes if c != own]
    nearest, distance = classifier.predict_embeddings(embeddings, classes=others)
    return _Scored(nearest, distance, second_nearest(classifier, embeddings, nearest, others))


def calibrate(
    classifier: FewShotClassifier, images: CalibrationImages, far: float, rules: tuple[str, ...] = RULES
) -> Calibration:
    """Fit each of ``rules`` by its held-out-class rate, and keep one as the module says (known images weigh by
    class)."""
    check_far(far)
    labels, kept = np.asarray(images.labels), scored(classifier, np.asarray(images.labels))
    if not kept.any():
        raise ValueError("calibration needs held-out images of at least one indexed class, beside another")
    embeddings, labels = images.embeddings[kept], labels[kept]
    genuine, _ = genuine_and_impostor(classifier, embeddings, labels)
    predicted, distance = classifier.predict_embeddings(embeddings)
    known = _Scored(predicted, distance, second_nearest(classifier, embeddings, predicted))
    unseen = sorted(set(labels.tolist()) - set(images.trained))
    basis = "unseen" if len(unseen) + len(images.user) >= 2 or not images.trained else "trained"
    groups = {str(c): _impostors(classifier, embeddings[labels == c], c)
              for c in (unseen if basis == "unseen" else sorted(set(labels.tolist())))}  # fmt: skip
    groups.update({name: _impostors(classifier, e, -1) for name, e in images.user.items() if len(e)})
    radii = {str(c): float(np.median(genuine[labels == c])) for c in np.unique(labels).tolist()}
    like_new = np.isin(labels, unseen) if unseen else np.ones(len(labels), bool)  # a class enrolled is like these
    base = Calibration(far, 1.0, radii=radii, shot_radii=shot_radii(embeddings[like_new], labels[like_new]),
                       basis=basis, genuine=len(labels))  # fmt: skip
    supports, candidates, fits = supports_per_class(classifier.index), {}, {}
    for rule in rules:
        trial = replace(base, rule=rule, scale=None if rule == "distance" else 1.0)
        scores = {name: g.score(trial, supports) for name, g in groups.items()}
        q, _ = fit_cut(list(scores.values()), far)
        cut = class_weighted_cut(list(scores.values()), q)
        rates = nested_rates(list(scores.values()), far).tolist() if len(scores) > 1 else []
        right = class_mean((predicted == labels) & (known.score(trial, supports) < cut), labels)
        fits[rule] = (Fit(q, cut, rates, right), scores, float(np.median(cut * trial.units(predicted, supports,
                      known.second))))  # fmt: skip
        candidates[rule] = {"rate": float(np.mean(rates)) if rates else None, "accepted_known": right, "cut": cut}
    rule = _choose(candidates, far) if len(groups) >= CHOOSE_CLASSES or DEFAULT_RULE not in rules else DEFAULT_RULE
    return _calibration(base, rule, *fits[rule], candidates)


def _choose(candidates: dict[str, dict[str, Any]], far: float) -> str:
    """The rule with the most known images accepted among those whose held-out rate reaches ``far``; else the
    one with the lowest held-out rate; the first rule when none has a rate."""
    reached = [r for r, c in candidates.items() if c["rate"] is not None and c["rate"] <= far]
    if reached:
        return max(reached, key=lambda r: candidates[r]["accepted_known"])  # the first of equals
    rated = [r for r, c in candidates.items() if c["rate"] is not None]
    return min(rated, key=lambda r: candidates[r]["rate"]) if rated else next(iter(candidates))


def _calibration(
    base: Calibration, rule: str, fit: Fit, groups: dict[str, np.ndarray], typical: float, candidates: dict
) -> Calibration:
    names, rates = list(groups), np.asarray(fit.held_out)
    stated = base.basis == "unseen" and len(names) >= MIN_CLASSES and len(rates) > 0
    ladder = [class_weighted_cut(list(groups.values()), float(r)) for r in RATES]
    return replace(
        base,
        rule=rule,
        threshold=fit.cut if rule == "distance" else typical,
        scale=None if rule == "distance" else fit.cut,
        radii=base.radii if rule == "spread" else {},
        shot_radii=base.shot_radii if rule == "spread" else [],
        rate=float(rates.mean()) if stated else None,
        interval=list(interval_over_classes(rates)) if stated else None,
        impostor_classes=len(names),
        held_out=dict(zip(names, rates.tolist(), strict=True)) if len(rates) else {},
        accepted_known=fit.accepted_known,
        impostors=int(sum(len(g) for g in groups.values())),
        candidates=candidates,
        impostor_scores=ladder,
        rates=RATES.tolist(),
    )


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of telling unknown from known by distance (1: every unknown is farther)."""
    from sklearn.metrics import roc_auc_score

    truth = np.concatenate([np.zeros(len(known)), np.ones(len(unknown))])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))


def evaluate_open_set(
    index: SupportIndex,
    method: str,
    embeddings: np.ndarray,
    labels: np.ndarray,
    left_out: list[int],
    threshold: Calibration | float | None,
) -> dict[str, Any]:
    """Leave each class of ``left_out`` out of the index in turn: its queries should be unknown, the others known.

    Per class: AUROC of known-vs-unknown by distance, the share of its queries answered unknown, and the
    accuracy on the known queries (right class *and* below its threshold). Summaries are means over classes.
    A class is left out by searching the run's index without it (a faiss selector), not by copying the index.
    ``threshold`` is a run's calibration (each class's threshold) or one distance for all.
    """
    rows = []
    classifier = make_classifier(method, index=index)
    for label in left_out:
        others = [c for c in classifier.classes if c != label]
        predicted, distance = classifier.predict_embeddings(embeddings, classes=others)
        unknown, known = labels == label, np.isin(labels, others)
        row: dict[str, Any] = {"class": int(label), "queries": int(unknown.sum()), "known_queries": int(known.sum())}
        row["auroc"] = auroc(distance[known], distance[unknown])
        row["closed_set_accuracy"] = float((predicted[known] == labels[known]).mean())
        if threshold is not None:
            limit = (
                limits(threshold, classifier, embeddings, predicted, others)
                if isinstance(threshold, Calibration)
                else np.full(len(predicted), float(threshold))
            )
            row["unknown_rejected"] = float((distance[unknown] >= limit[unknown]).mean())
            right = (predicted[known] == labels[known]) & (distance[known] < limit[known])
            row["known_accuracy"] = float(right.mean())
        rows.append(row)
    keys = ["auroc", "closed_set_accuracy", *(["unknown_rejected", "known_accuracy"] if threshold is not None else [])]
    summary = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    cut = threshold.threshold if isinstance(threshold, Calibration) else threshold
    return {"threshold": cut, "left_out": [int(c) for c in left_out], "per_class": rows, "mean": summary}
