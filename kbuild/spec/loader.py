# TEMPORARY local stub (kbuild/data dev only; NOT to be committed)
def load_spec(*args, **kwargs):
    raise NotImplementedError
