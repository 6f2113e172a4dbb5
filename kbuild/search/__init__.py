"""Hyperparameter search (`kbuild tune`): a spec's `search:` section, run as an Optuna study.

A search is a set of `--set` overrides, scored on the validation split and pruned epoch by epoch:

    spec.py     the `search:` section and its parameter spaces (imported by the spec; no Optuna)
    algorithms.py  samplers and pruners by name (registries; Optuna imported inside the factories)
    paths.py    every parameter path checked against the spec, sampled values turned into overrides
    study.py    the search folder, the study's storage, samplers and pruners (registries)
    trial.py    one trial: an ordinary run folder trained in a child process that reports to Optuna
    runner.py   the ask -> train -> tell loop of a worker, and the local worker processes
    output.py   trials.csv, trials.md, importances.json, best.yaml, best.json and the console lines

`spec.py`, `algorithms.py` and `paths.py` sit at the spec's level (no Optuna, no TensorFlow);
the rest imports Optuna, and only `trial.py`'s child process imports TensorFlow: the search
process itself stays small, whatever the trial count.
"""
