"""Hyperparameter search (`kbuild tune`): a spec's `search:` section, run as an Optuna study.

A search is a set of `--set` overrides, scored on the validation split and pruned epoch by epoch:

    kbuild/spec/search.py             the `search:` section and its parameter spaces (no Optuna)
    kbuild/spec/search_algorithms.py  samplers and pruners by name (Optuna imported inside the factories)
    kbuild/spec/search_paths.py       parameter paths checked against the spec, values turned into overrides
    study.py    the search folder, the study's storage, samplers and pruners (registries)
    trial.py    one trial: an ordinary run folder trained in a child process that reports to Optuna
    runner.py   the ask -> train -> tell loop of a worker, and the local worker processes
    output.py   trials.csv, trials.md, importances.json, best.yaml, best.json and the console lines

The three spec-level modules live in kbuild/spec (the spec imports them; no Optuna, no TensorFlow);
the rest imports Optuna, and only `trial.py`'s child process imports TensorFlow: the search
process itself stays small, whatever the trial count.
"""
