"""A built-in synthetic code-review dataset whose training labels are noisier for inexperienced reviewers.

World: repositories → subsystems → packages; reviewers with Zipf-skewed activity; for every
(reviewer, package) an authoring (aco) and reviewing (rso) ownership drawn from a skewed mixture.
Each sample is one review comment: a reviewer, a package, a class and numeric features. Observed
training labels are corrupted with probability η = η_max·exp(−κ·o), o = the reviewer's ownership
(`noise_signal` at `noise_granularity`); validation and test labels are clean.

Ownership: each (reviewer, package) pair falls in a low, mid or high component (`mixture`) and
draws aco and rso from that component's Beta; subsystem and repository values are the
package-size-weighted means of the reviewer's package values (exactly the reviewer's share of the
group's commits when ownership is a share of commits). A sample with missing ownership shows NaN
in aco and rso at every granularity; its hidden true value still sets its noise rate.

Built from the seed alone (no file, no network) in well under a second; bit-identical per seed.
Independent random streams (structure, samples, features, missingness, noise) mean that changing a
noise knob leaves the clean data unchanged, and changing κ or η_max re-uses the same uniform draws.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from trainables.data.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.params import GRANULARITIES

# Code-review comment categories, most frequent first; used as class names when K <= their number.
REVIEW_CLASSES = (
    "refactoring",
    "discussion",
    "documentation",
    "functional",
    "false_positive",
    "style",
    "testing",
    "security",
)
SIGNALS = ("aco", "rso")


@dataclass(frozen=True)
class SyntheticSpec:
    """Every knob of the synthetic generator with its default (the why is on each line)."""

    seed: int = 0  # one seed decides everything: two builds with the same spec are bit-identical
    n_train: int = 6000  # 12 MLP epochs at batch 256 take ~0.5-0.8 s on one CPU thread
    n_val: int = 2000  # big enough that macro-F1 over 5 long-tailed classes is not too noisy
    n_test: int = 10000  # the final report's; 2000 rows left its part of a Δ interval at ±0.008
    repositories: int = 3  # a few repositories, each with its own missing-ownership rate
    subsystems: int = 4  # subsystems per repository
    packages: int = 5  # packages per subsystem (3 × 4 × 5 = 60 packages)
    reviewers: int = 300  # enough reviewers that most (reviewer, package) pairs are rare
    zipf: float = 1.1  # activity ∝ rank^-zipf: a few core reviewers write most comments
    package_sigma: float = 1.0  # log-normal spread of package sizes (popularity and aggregation)
    mixture: tuple[float, float, float] = (0.60, 0.25, 0.15)  # P(low / mid / high) per pair
    rso_beta: tuple[tuple[float, float], ...] = ((1.0, 20.0), (3.0, 5.0), (6.0, 2.0))  # ~.05 .4 .75
    aco_beta: tuple[tuple[float, float], ...] = ((1.0, 30.0), (2.0, 6.0), (5.0, 3.0))  # ~.03 .25 .6
    classes: int = 5  # K, like the five comment groups of the nova data set
    imbalance: float = 20.0  # largest / smallest class prior; priors fall geometrically
    features: int = 32  # numeric features per comment
    informative: int = 8  # features that carry class signal; the rest are package shift + noise
    class_sep: float = 1.1  # std of class means on informative features (sets clean accuracy)
    package_shift: float = 0.5  # std of a per-package offset on every feature (domain shift)
    noise_max: float = 0.6  # η_max: corruption probability at zero ownership
    noise_decay: float = 8.0  # κ: η falls as exp(−κ·o); 0 makes noise independent of experience
    noise_signal: str = "rso"  # o is reviewing ownership ("rso") or authoring ownership ("aco")
    noise_granularity: str = "package"  # o is taken at this granularity
    noise_kind: str = "prior"  # replacement label: "prior" (common classes) or "uniform"
    missing: float = 0.10  # expected fraction of samples whose ownership is unknown (NaN)
    missing_spread: float = 0.5  # repository rates are missing·(1 ± spread) (then renormalised)

    def __post_init__(self) -> None:
        _validate(self)


def _validate(spec: SyntheticSpec) -> None:
    """Raise UserInputError naming the first knob whose value is out of range."""
    positive = ("n_train", "n_val", "n_test", "repositories", "subsystems", "packages", "reviewers")
    for name in positive:
        _need(spec, name, getattr(spec, name) >= 1, "an integer >= 1")
    _need(spec, "classes", spec.classes >= 2, "an integer >= 2")
    _need(spec, "imbalance", spec.imbalance >= 1, "a number >= 1")
    _need(spec, "features", spec.features >= 1, "an integer >= 1")
    _need(
        spec, "informative", 1 <= spec.informative <= spec.features, "an integer in [1, features]"
    )
    for name in ("zipf", "package_sigma", "class_sep", "package_shift", "noise_decay"):
        _need(spec, name, getattr(spec, name) >= 0, "a number >= 0")
    for name in ("noise_max", "missing", "missing_spread"):
        _need(spec, name, 0 <= getattr(spec, name) <= 1, "a number in [0, 1]")
    _need(
        spec,
        "mixture",
        len(spec.mixture) == 3 and min(spec.mixture) >= 0 and abs(sum(spec.mixture) - 1) < 1e-6,
        "three weights >= 0 summing to 1",
    )
    for name in ("rso_beta", "aco_beta"):
        pairs = getattr(spec, name)
        ok = len(pairs) == 3 and all(len(p) == 2 and min(p) > 0 for p in pairs)
        _need(spec, name, ok, "three (a, b) pairs with a, b > 0")
    _need(spec, "noise_signal", spec.noise_signal in SIGNALS, f"one of {list(SIGNALS)}")
    _need(
        spec,
        "noise_granularity",
        spec.noise_granularity in GRANULARITIES,
        f"one of {list(GRANULARITIES)}",
    )
    _need(spec, "noise_kind", spec.noise_kind in NOISE_KINDS, f"one of {list(NOISE_KINDS)}")


def _need(spec: SyntheticSpec, name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise UserInputError(
            f"synthetic data: {name} must be {expected}, got {getattr(spec, name)!r}"
        )


def class_priors(classes: int, imbalance: float) -> np.ndarray:
    """(K,) π_k ∝ imbalance^(−k/(K−1)), so π_0/π_{K−1} = imbalance."""
    p = imbalance ** (-np.arange(classes) / (classes - 1))
    return p / p.sum()


def noise_rate(o: np.ndarray, noise_max: float, noise_decay: float) -> np.ndarray:
    """η = η_max·exp(−κ·o): the probability that a training label is corrupted."""
    return noise_max * np.exp(-noise_decay * o)


def _replace_prior(y: np.ndarray, u: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """A different class drawn ∝ π (true class excluded): unsure reviewers pick common labels."""
    p = np.broadcast_to(priors, (y.shape[0], priors.shape[0])).copy()  # (n, K)
    p[np.arange(y.shape[0]), y] = 0.0
    cdf = np.cumsum(p, axis=1) / p.sum(axis=1, keepdims=True)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), priors.shape[0] - 1)


def _replace_uniform(y: np.ndarray, u: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """A different class drawn uniformly (symmetric noise)."""
    k = priors.shape[0]
    return (y + 1 + np.minimum((u * (k - 1)).astype(np.int64), k - 2)) % k


NOISE_KINDS = {"prior": _replace_prior, "uniform": _replace_uniform}


@dataclass
class _World:
    """The fixed structure: package → subsystem → repository, sizes, activity and ownership."""

    pkg_sub: np.ndarray  # (P,) global subsystem of each package
    pkg_repo: np.ndarray  # (P,) repository of each package
    pkg_p: np.ndarray  # (P,) probability that a comment is on this package (∝ size)
    reviewer_p: np.ndarray  # (V,) probability that a comment is by this reviewer (Zipf)
    own: dict[str, np.ndarray]  # signal -> (V, P, 3) ownership at GRANULARITIES per package


def _aggregate(values: np.ndarray, groups: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(V, P) package values -> (V, P) size-weighted mean over each package's group.

    With ownership = reviewer's share of a package's commits and size = the package's commits,
    this is exactly the reviewer's share of the whole group's commits.
    """
    onehot = np.eye(groups.max() + 1)[groups]  # (P, G)
    group_mean = (values * size) @ onehot / (size @ onehot)  # (V, G)
    return group_mean[:, groups]


def _world(spec: SyntheticSpec, rng: np.random.Generator) -> _World:
    n_pkg = spec.repositories * spec.subsystems * spec.packages
    pkg_sub = np.arange(n_pkg) // spec.packages
    pkg_repo = pkg_sub // spec.subsystems
    size = rng.lognormal(0.0, spec.package_sigma, n_pkg)
    activity = rng.permutation(np.arange(1, spec.reviewers + 1) ** -spec.zipf)
    comp = rng.choice(3, size=(spec.reviewers, n_pkg), p=np.asarray(spec.mixture))  # (V, P)
    own = {}
    for signal, beta in (("aco", spec.aco_beta), ("rso", spec.rso_beta)):
        a, b = np.asarray(beta, dtype=np.float64).T  # (3,), (3,)
        pkg = rng.beta(a[comp], b[comp])  # (V, P)
        by_level = {
            "repository": _aggregate(pkg, pkg_repo, size),
            "subsystem": _aggregate(pkg, pkg_sub, size),
            "package": pkg,
        }
        own[signal] = np.stack([by_level[g] for g in GRANULARITIES], axis=-1)  # (V, P, 3)
    return _World(pkg_sub, pkg_repo, size / size.sum(), activity / activity.sum(), own)


def _missing_mask(
    spec: SyntheticSpec, world: _World, pkg: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(n,) bool; repository r hides ownership at rate m_r, with E[fraction] = spec.missing."""
    spread = np.linspace(-1.0, 1.0, spec.repositories) if spec.repositories > 1 else np.zeros(1)
    rate = 1.0 + spec.missing_spread * spread  # (R,)
    repo_share = np.bincount(world.pkg_repo, weights=world.pkg_p, minlength=spec.repositories)
    rate = np.clip(spec.missing * rate / (repo_share @ rate), 0.0, 1.0)
    return rng.random(pkg.shape[0]) < rate[world.pkg_repo[pkg]]


def _features(
    spec: SyntheticSpec, y: np.ndarray, pkg: np.ndarray, n_pkg: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, F) x = μ_y + δ_package + ε: class means on the informative features only."""
    mu = np.zeros((spec.classes, spec.features))
    mu[:, : spec.informative] = rng.normal(0.0, spec.class_sep, (spec.classes, spec.informative))
    shift = rng.normal(0.0, spec.package_shift, (n_pkg, spec.features))
    return mu[y] + shift[pkg] + rng.normal(0.0, 1.0, (y.shape[0], spec.features))


def make_synthetic(spec: SyntheticSpec | None = None) -> Dataset:
    """Build the synthetic dataset; see the module docstring and SyntheticSpec for the model."""
    spec = spec or SyntheticSpec()
    r_world, r_samples, r_features, r_missing, r_noise = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(5)
    )
    world = _world(spec, r_world)
    n = spec.n_train + spec.n_val + spec.n_test
    priors = class_priors(spec.classes, spec.imbalance)
    y = r_samples.choice(spec.classes, size=n, p=priors)
    reviewer = r_samples.choice(world.reviewer_p.shape[0], size=n, p=world.reviewer_p)
    pkg = r_samples.choice(world.pkg_p.shape[0], size=n, p=world.pkg_p)
    x = _features(spec, y, pkg, world.pkg_p.shape[0], r_features)
    own = {s: world.own[s][reviewer, pkg] for s in SIGNALS}  # (n, 3) true values
    hidden = _missing_mask(spec, world, pkg, r_missing)

    tr = slice(0, spec.n_train)
    o = own[spec.noise_signal][tr, GRANULARITIES.index(spec.noise_granularity)]
    eta = noise_rate(o, spec.noise_max, spec.noise_decay)
    u_flip, u_class = r_noise.random(spec.n_train), r_noise.random(spec.n_train)
    flip = u_flip < eta
    noisy = y[tr].copy()
    noisy[flip] = NOISE_KINDS[spec.noise_kind](noisy[flip], u_class[flip], priors)
    y_obs = np.concatenate([noisy, y[spec.n_train :]])

    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    shown = {s: np.where(hidden[:, None], np.nan, v) for s, v in own.items()}
    bounds = np.cumsum([0, spec.n_train, spec.n_val, spec.n_test])
    splits = [
        _split(x, y_obs, shown, slice(lo, hi))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    meta = {
        "preset": "synthetic",
        "seed": spec.seed,
        "spec": asdict(spec),
        "class_priors": priors.tolist(),
        "train_clean_y": torch.from_numpy(y[tr].copy()),
        "train_eta": torch.from_numpy(eta.astype(np.float32)),
        "train_noise_rate": float(flip.mean()),
        "train_package": torch.from_numpy(pkg[tr].copy()),
        "train_reviewer": torch.from_numpy(reviewer[tr].copy()),
        "notes": "training labels noisy (η = η_max·exp(−κ·o)); validation and test labels clean",
    }
    return Dataset(*splits, classes=class_names(spec.classes), vocab_size=0, meta=meta)


def _split(x: np.ndarray, y: np.ndarray, own: dict[str, np.ndarray], rows: slice) -> Split:
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a[rows], dtype=np.float32))  # noqa: E731
    return Split(
        f32(x), torch.from_numpy(y[rows].astype(np.int64)), f32(own["aco"]), f32(own["rso"])
    )


def class_names(classes: int) -> tuple[str, ...]:
    """Code-review category names when there are few enough classes, else c0..c{K−1}."""
    if classes <= len(REVIEW_CLASSES):
        return REVIEW_CLASSES[:classes]
    return tuple(f"c{k}" for k in range(classes))
