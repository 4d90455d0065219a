"""Every default of the report in one place, each with its reason."""

# Hypervolume reference point: the worst value per objective among front candidates, moved away
# from the front by HV_MARGIN x the objective's observed range (or x max(|worst|, 1) when every
# candidate has the same value), so that extreme front points still add volume.
HV_MARGIN = 0.1

# Which epoch of a trial counts: "best" = the epoch with the best primary metric (what a user
# restoring the best checkpoint gets); "last" = the final reported epoch.
EPOCH_RULE = "best"

# PED-ANOVA (optuna's default evaluator) needs a handful of trials to say anything; below this
# many finished trials in a group, importances are skipped with a note.
IMPORTANCE_MIN_TRIALS = 4

# Metrics read at the trial's last reported epoch rather than the counted one: train_time_s is
# cumulative, and the cost of a trial is all the training it did.
TOTAL_METRICS = ("train_time_s",)

# The confirmation's equivalence margin δ per test metric (confirm.delta overrides it): the
# smallest difference from plain CE that matters. One point on metrics that lie in [0, 1] (F1,
# accuracy, recall, calibration error: `bounded` in trainables.metrics.table) — the resolution at
# which loss papers report them. Other metrics (loss, entropy, temperature) have no scale of their
# own: no default, so only better or worse can be said of them unless confirm.delta names one.
MARGIN = 0.01

# The sequential confirmation stops adding seeds to an open comparison whose estimated seeds to a
# verdict (at the observed sd and Δ) exceed this multiple of confirm.max_seeds, or that only a larger
# test split could decide: it would end undecided anyway. Well beyond the budget, so that a noisy
# early estimate rarely stops a comparison the budget could have decided (the simulation in
# `python -m benchmarks verdict` measures the power with this rule in place).
FUTILE_BEYOND = 1.5
# ... but only from this many paired seeds on: below it the sd behind the estimate is too rough (at 8
# seeds its 90% range spans a factor of 2.5).
FUTILE_AFTER = 8
