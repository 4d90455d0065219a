"""One canonical form per training configuration, so that a search can skip repeats.

Rules (missing keys read as their PARAMS default):
- a key that cannot affect training given the others is dropped (RELEVANT_WHEN, e.g. loss.gamma
  unless loss.kind is focal; every elf.* key when elf.strategy is none);
- focal with γ = 0 and α = null is cross-entropy: (1 − p)^0 = 1;
- effective-number class weights with β = 0 are all (1 − 0^n)/(1 − 0) = 1, i.e. no class weights;
- with elf.normalize none, ELF weights ω = e^(1+o) with o ∈ [0, 1] lie in [e, e²] when they are
  clipped (trainables.weights: raw → normalise → clip), so clip_min < e and clip_max > e² clip
  nothing and become null (with normalize mean the range is data-dependent: nothing collapses).
Caveat: with elf.strategy none the weights are all 1, and the trial still applies clip and
batch_norm to them; that only rescales the loss by a constant (1.25 for batch_norm), which AdamW
ignores up to its eps, so those keys are treated as irrelevant too.
A None for a key that cannot be None is the inactive marker of `search.param_space` and is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from trainables.errors import UserInputError
from trainables.params import PARAMS, STRATEGIES, closest

ELF_ON = tuple(s for s in STRATEGIES if s != "none")
# ω = e^(1+o), o ∈ [0, 1], before normalisation; float32 rounds e and e² to within ~1e-7 of the
# exact values (either side), so a clip counts as "outside" only beyond a relative slack of 1e-6
FLOAT32_SLACK = 1e-6
ELF_MIN, ELF_MAX = math.e * (1 - FLOAT32_SLACK), math.e**2 * (1 + FLOAT32_SLACK)
FILLS = ("default", "impute", "min")  # missing policies that can read elf.default_aco/rso
DEFAULTS = {k: p.default for k, p in PARAMS.items()}
MAX_PASSES = 8  # each pass can only remove keys or apply a one-way rewrite; 2 suffice in practice

# key -> {parent: values under which key matters}; all entries must hold and parents be relevant
RELEVANT_WHEN: dict[str, dict[str, tuple[Any, ...]]] = {
    "loss.gamma": {"loss.kind": ("focal",)},
    "loss.alpha": {"loss.kind": ("focal",)},
    **{
        f"elf.{k}": {"elf.strategy": ELF_ON}
        for k in ("granularity", "missing", "normalize", "clip_min", "clip_max", "batch_norm")
    },
    "elf.warmup_frac": {"elf.strategy": ELF_ON},
    # impute and min fall back to the defaults when a training column has no known value
    "elf.default_aco": {"elf.strategy": ("aco", "avg", "max"), "elf.missing": FILLS},
    "elf.default_rso": {"elf.strategy": ("rso", "avg", "max"), "elf.missing": FILLS},
    "cw.beta": {"cw.method": ("effective",)},
    "cw.cap": {"cw.method": ("balanced", "effective")},
}


def relevant(key: str, values: Mapping[str, Any]) -> bool:
    """True when `key` can affect training given the complete flat config `values`."""
    return all(
        values[parent] in allowed and relevant(parent, values)
        for parent, allowed in RELEVANT_WHEN.get(key, {}).items()
    )


def _focal_is_ce(v: Mapping[str, Any]) -> dict[str, Any]:
    collapse = v["loss.kind"] == "focal" and v["loss.gamma"] == 0 and v["loss.alpha"] is None
    return {"loss.kind": "ce"} if collapse else {}


def _effective_beta_zero(v: Mapping[str, Any]) -> dict[str, Any]:
    return {"cw.method": "none"} if v["cw.method"] == "effective" and v["cw.beta"] == 0 else {}


def _clip_outside_weights(v: Mapping[str, Any]) -> dict[str, Any]:
    if v["elf.strategy"] == "none" or v["elf.normalize"] != "none":
        return {}
    low, high = v["elf.clip_min"], v["elf.clip_max"]
    return {
        **({"elf.clip_min": None} if low is not None and low <= ELF_MIN else {}),
        **({"elf.clip_max": None} if high is not None and high >= ELF_MAX else {}),
    }


REWRITES: tuple[Callable[[Mapping[str, Any]], dict[str, Any]], ...] = (
    _focal_is_ce,
    _effective_beta_zero,
    _clip_outside_weights,
)


def _checked(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if key not in PARAMS:
            hint = closest(key, tuple(PARAMS))
            raise UserInputError(f"canonical: unknown trial key {key!r}{hint}")
        if value is None and PARAMS[key].kind != "float_or_none":
            continue
        if isinstance(value, float) and math.isnan(value):
            raise UserInputError(f"canonical: {key}: expected a number, got nan")
        try:
            out[key] = PARAMS[key].check(value)
        except ValueError as e:
            raise UserInputError(f"canonical: {e}") from e
    return out


def canonical(params: Mapping[str, Any], fill_defaults: bool = False) -> dict[str, Any]:
    """The canonical form of a full or partial flat config (idempotent; keeps the input's order).

    With `fill_defaults`, missing keys are filled first, so that two configs are equivalent exactly
    when their canonical forms are equal; without it, absent keys stay absent.
    """
    out = _checked(params)
    if fill_defaults:
        out = {k: out.get(k, d) for k, d in DEFAULTS.items()}
    for _ in range(MAX_PASSES):
        full = DEFAULTS | out
        updates = {k: v for rule in REWRITES for k, v in rule(full).items() if full[k] != v}
        full |= updates
        kept = {k: full[k] for k in out | updates if relevant(k, full)}
        if kept == out:
            return out
        out = kept
    return out
