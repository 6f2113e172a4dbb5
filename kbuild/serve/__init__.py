"""`kbuild serve`: TF Serving's REST API over a folder of exports, with dynamic batching.

Loads SavedModels with only `tensorflow` and `tensorflow_text` (no Keras, no kbuild model code), and
knows nothing about tasks: inputs and outputs come from each model's signatures, which the task's
`serving_outputs` hook defined at export time. A new task therefore needs no server change.
"""

from kbuild.serve.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "load_repository"]


def __getattr__(name: str):  # lazy: starlette and TensorFlow only when serving
    if name == "create_app":
        from kbuild.serve.app import create_app

        return create_app
    if name == "load_repository":
        from kbuild.serve.repository import load_repository

        return load_repository
    raise AttributeError(name)
