"""Online per-entity baselines and drift detection, in River's estimator style.

:class:`BaselineDetector` keeps an exponentially weighted mean and variance per
feature in one ``array('d')`` (a few hundred bytes, not one River stats object
per feature) and scores how far a new observation is from it. It subclasses
``river.anomaly.base.AnomalyDetector`` so it composes with River tooling, and it
works on any numeric series, e.g. a plain metric with timestamps::

    >>> from detectors.baseline import BaselineDetector
    >>> det = BaselineDetector(half_life=20)
    >>> for i in range(100):
    ...     det.learn_one({"x": 10.0 + (i % 3)}, t=60.0 * i)
    >>> det.score_one({"x": 11.0}) < 0.2 < det.score_one({"x": 40.0})
    True

:class:`ScoreDrift` is a compact one-sided Page-Hinkley test (a
``river.base.DriftDetector``) whose reference mean starts from a prior, so an
entity whose very first observations are already high is still seen as a
change from the population's normal level.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Mapping, Sequence

from river import base
from river.base import AnomalyDetector

__all__ = ["BaselineDetector", "ScoreDrift"]


class BaselineDetector(AnomalyDetector):
    """Exponentially weighted mean/variance per feature; ``score_one`` in [0, 1] (higher = more unusual).

    Parameters
    ----------
    features
        Feature names, in a fixed order (shared by all instances, so per-instance
        memory is one float array). ``None``: taken from the first ``learn_one``.
    half_life
        Half-life of the weights, in observations (when ``t`` is not given) or in
        seconds of ``t`` when ``half_life_seconds`` is set.
    half_life_seconds
        If set, weights decay with elapsed time ``t`` instead of per observation.
    prior
        ``{name: (mean, variance)}`` starting point (population prior); it counts
        as ``prior_weight`` observations, so a new entity is compared with the
        population until it has history of its own.
    directions
        ``{name: +1 | -1 | 0}``: only deviations in that direction count towards
        the score (0 = both, the default).
    min_std
        Floor of the standard deviation per feature (avoids huge z-scores of
        constant features).
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        half_life: float = 50.0,
        half_life_seconds: float | None = None,
        prior: Mapping[str, tuple[float, float]] | None = None,
        prior_weight: float = 5.0,
        directions: Mapping[str, int] | None = None,
        min_std: float | Mapping[str, float] = 0.05,
    ) -> None:
        self.features = tuple(features) if features is not None else None
        self.half_life = half_life
        self.half_life_seconds = half_life_seconds
        self.prior = prior or None  # kept by reference: many instances share one prior
        self.prior_weight = prior_weight
        self.directions = directions or None
        self.min_std = min_std
        self._init_state()

    # -- state -------------------------------------------------------------------------------
    def _init_state(self) -> None:
        k = len(self.features) if self.features else 0
        self._state = array("d", bytes(8 * (2 * k + 2)))  # [means..., vars..., weight, last_t]
        self._state[-1] = math.nan
        if self.features and self.prior:
            for i, name in enumerate(self.features):
                if name in self.prior:
                    m, v = self.prior[name]
                    self._state[i], self._state[k + i] = m, v
            self._state[2 * k] = self.prior_weight

    def copy(self) -> BaselineDetector:
        """A detector with the same parameters and an independent copy of the learned state.

        Cheap (one dict copy and one array copy, no prior lookups): a population of entities can share one
        untrained detector as their starting point and take a copy of it on their first write.
        """
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.__dict__.pop("_zden", None)  # a copy is writable (not frozen)
        new._state = array("d", self._state)
        return new

    _zden: list[float] | None = None  # set by freeze(): the z-score denominators, fixed

    def freeze(self) -> BaselineDetector:
        """Make this detector read-only (e.g. a population prior shared by many entities); returns it.

        Learning then raises, and :meth:`zvector` uses per-feature means and denominators computed once
        here (the same numbers it would compute on every call). :meth:`copy` gives a writable detector.
        """
        k, st = self.n_features, self._state
        ms = self.min_std
        floor = ms if not isinstance(ms, Mapping) else 0.05
        den = []
        for i in range(k):
            var = st[k + i]
            sd = math.sqrt(var) if var > 0.0 else 0.0
            den.append(sd if sd > floor else floor)
        self._zmean = st.tolist()[:k]
        self._zden = den
        return self

    @property
    def n_features(self) -> int:
        return len(self.features) if self.features else 0

    @property
    def weight(self) -> float:
        """Effective number of observations behind the baseline (prior included)."""
        return self._state[-2]

    def _alpha(self, t: float | None) -> float:
        st = self._state
        w = st[-2]
        if self.half_life_seconds is not None and t is not None:
            last = st[-1]
            dt = 0.0 if math.isnan(last) else max(0.0, t - last)
            decay = 0.5 ** (dt / self.half_life_seconds)
        else:
            decay = 0.5 ** (1.0 / self.half_life)
        # weighted incremental update: the new point has weight 1, history decays
        w_new = w * decay + 1.0
        st[-2] = w_new
        if t is not None:
            st[-1] = t
        return 1.0 / w_new

    def learn_one(self, x: Mapping[str, float], t: float | None = None, weight: float = 1.0) -> None:  # type: ignore[override]
        """Fold ``x`` (optionally at time ``t``; ``weight`` repeats it) into the baseline."""
        if self.features is None:
            self.features = tuple(x)
            self._init_state()
        self.learn_values([float(x.get(f, 0.0)) for f in self.features], t, weight)

    def learn_values(self, values: Sequence[float], t: float | None = None, weight: float = 1.0) -> None:
        """Like :meth:`learn_one` with values in ``features`` order (no dict needed)."""
        if self._zden is not None:
            raise RuntimeError("a frozen BaselineDetector does not learn (learn on a copy())")
        st, k = self._state, len(values)
        for _ in range(max(1, int(round(weight)))):
            a = self._alpha(t)
            b = 1.0 - a
            # per feature: mean m += a * d and variance (1 - a) * (var + a * d * d), d = value - old mean;
            # built as two lists from one zip and written back as one slice (no index arithmetic per feature,
            # and one array built: each of its items is converted once, like an indexed store)
            means: list[float] = []
            variances: list[float] = []
            for v, m, var in zip(values, st[:k], st[k : 2 * k]):
                d = v - m
                means.append(m + a * d)
                variances.append(b * (var + a * d * d))
            st[: 2 * k] = array("d", means + variances)

    def mean(self, name: str) -> float:
        return self._state[self.features.index(name)] if self.features else 0.0

    def std(self, name: str) -> float:
        k = self.n_features
        return math.sqrt(max(0.0, self._state[k + self.features.index(name)]))

    def _floor(self, name: str) -> float:
        ms = self.min_std
        return ms.get(name, 0.05) if isinstance(ms, Mapping) else ms

    def zscores(self, x: Mapping[str, float]) -> dict[str, float]:
        """Signed z-score of each feature of ``x`` against the baseline."""
        if not self.features:
            return {name: 0.0 for name in x}
        k, st, out = self.n_features, self._state, {}
        for i, name in enumerate(self.features):
            if name in x:
                sd = max(math.sqrt(max(0.0, st[k + i])), self._floor(name))
                out[name] = (float(x[name]) - st[i]) / sd
        return out

    def zvector(self, values: Sequence[float]) -> list[float]:
        """Signed z-scores of ``values`` given in ``features`` order (no dicts: the per-window fast path)."""
        den = self._zden
        if den is not None and len(values) == len(den):
            return [(v - m) / d for v, m, d in zip(values, self._zmean, den)]
        st, k = self._state, len(values)
        ms = self.min_std
        floor = ms if not isinstance(ms, Mapping) else 0.05
        sqrt = math.sqrt
        # one pass over (value, mean, variance) triples: the same arithmetic as indexing, without the index math
        return [(v - m) / (sd if (sd := sqrt(var) if var > 0.0 else 0.0) > floor else floor)
                for v, m, var in zip(values, st[:k], st[k : 2 * k])]

    def deviation(self, z: Sequence[float]) -> float:
        """:meth:`score_one` from a z-score vector (``features`` order)."""
        if not z:
            return 0.0
        dirs = self.directions
        tot = 0.0
        if dirs:
            for name, v in zip(self.features, z, strict=False):
                d = dirs.get(name, 0)
                v = max(v, 0.0) if d > 0 else min(v, 0.0) if d < 0 else v
                tot += v * v
        else:
            for v in z:
                tot += v * v
        return 1.0 - math.exp(-tot / len(z) / 8.0)

    def score_one(self, x: Mapping[str, float], t: float | None = None) -> float:  # type: ignore[override]
        """Deviation of ``x`` from the baseline in [0, 1]: ``1 - exp(-mean(z²)/8)`` over directed z-scores."""
        if self.weight <= 0:
            return 0.0
        z = self.zscores(x)
        if not z:
            return 0.0
        dirs = self.directions or {}
        tot = 0.0
        for name, v in z.items():
            d = dirs.get(name, 0)
            if d > 0:
                v = max(v, 0.0)
            elif d < 0:
                v = min(v, 0.0)
            tot += v * v
        return 1.0 - math.exp(-tot / len(z) / 8.0)

    # -- persistence -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The learned state (not the parameters): ``<I count><doubles...>``."""
        return struct.pack("<I", len(self._state)) + self._state.tobytes()

    def load_bytes(self, data: bytes) -> None:
        if self._zden is not None:
            raise RuntimeError("a frozen BaselineDetector does not load state (load into a copy())")
        (n,) = struct.unpack_from("<I", data)
        arr = array("d")
        arr.frombytes(data[4 : 4 + 8 * n])
        self._state = arr


class ScoreDrift(base.DriftDetector):
    """One-sided (upward) Page-Hinkley test on a score stream, with a prior reference mean.

    The reference mean starts at ``prior_mean`` weighted as ``prior_n``
    observations and then follows the stream with at most ``max_n`` effective
    observations (so it keeps adapting). ``drift_detected`` is True on the
    update where the cumulative upward deviation exceeds ``threshold``; the
    test then restarts, keeping its reference mean.
    """

    def __init__(self, threshold: float = 1.5, delta: float = 0.05, prior_mean: float = 0.05,
                 prior_n: float = 20.0, max_n: float = 200.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.delta = delta
        self.prior_mean = prior_mean
        self.prior_n = prior_n
        self.max_n = max_n
        self._s = array("d", (prior_mean, prior_n, 0.0, 0.0))  # mean, n, cumulative sum, its minimum

    def _reset(self) -> None:
        super()._reset()
        if hasattr(self, "_s"):
            self._s[2] = self._s[3] = 0.0

    @property
    def statistic(self) -> float:
        """Current Page-Hinkley statistic (cumulative sum above its minimum)."""
        return self._s[2] - self._s[3]

    @property
    def reference_mean(self) -> float:
        return self._s[0]

    def update(self, x: float) -> None:  # type: ignore[override]
        if self._drift_detected:
            self._reset()
        s = self._s
        n = s[1] + 1.0
        n = self.max_n if self.max_n < n else n  # min(n, max_n) without the builtin's per-call argument parsing
        s[1] = n
        s[0] += (x - s[0]) / n
        s[2] += x - s[0] - self.delta
        if s[2] < s[3]:
            s[3] = s[2]
        self._drift_detected = (s[2] - s[3]) > self.threshold

    def copy(self) -> ScoreDrift:
        """A test with the same parameters and an independent copy of its state (see :meth:`BaselineDetector.copy`)."""
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new._s = array("d", self._s)
        return new

    def to_list(self) -> list[float]:
        return [*self._s, 1.0 if self._drift_detected else 0.0]

    def load_list(self, values: Sequence[float]) -> None:
        self._s = array("d", values[:4])
        self._drift_detected = bool(values[4])
