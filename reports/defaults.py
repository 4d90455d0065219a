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
