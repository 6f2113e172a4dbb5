"""What every kbuild layer module shares."""

PACKAGE = "kbuild"
"""The `register_keras_serializable` package: saved models name classes `kbuild>Class`, whatever
module defines them, so a layer may move between modules without breaking old model.keras files."""


def float_mask(mask, x):
    """[batch, time] mask -> [batch, time, 1] in x's dtype (all ones when there is no mask)."""
    from keras import ops

    if mask is None:
        return ops.ones_like(x[..., :1])
    return ops.expand_dims(ops.cast(mask, x.dtype), axis=-1)
