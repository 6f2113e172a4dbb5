"""Hypothesis strategies for hostile kbuild input: mutated specs, YAML oddities, overrides,
`extends:` chains, data files and serve request bodies."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted((REPO / "specs").glob("*.yaml"))
SPEC_TEXTS = {path.name: path.read_text(encoding="utf-8") for path in SPEC_FILES}
SPEC_DATA = {name: yaml.safe_load(text) for name, text in SPEC_TEXTS.items()}

WORDS = ["val_acuracy", "val_accuracy", "val_loss", "loss", "token_accuracy", "crf", "softmax", "bpe", "sentiment",
         "savedmodel", "tflite", "transformer_encoder", "lstm", "gru", "cnn", "mean", "cls", "wordpiece", "char",
         "word", "whitespace", "adamw", "sgd", "cosine", "mirrored", "balanced", "text", "label", "Text", "teext",
         "uabel", "tsv", "jsonl", "parallel", "conll", "${KBUILD_DATA}/sst2/train.tsv", "${NOPE}", "${X:-3}", "/",
         ".", "..", "/etc", "specs", "64", "1e-3", "inf", ".inf", ".nan", "-.inf", "~", "null", "yes", "no", "on"]

hostile_scalars = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 3, 7, 8, 64, 2**31, 2**32 - 1, 2**32, 2**63, 10**30, 20_000_000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-9, 0.5, 0.999, 1.0, 1.5, 1e400, -1e-3]),
    st.text(max_size=12),
    st.sampled_from(WORDS + [""]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS + ["type", "dim", "x"]), inner, max_size=3)),
    max_leaves=6,
)


def key_paths(node, prefix=()):
    """Every path to a value in plain data (dict keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from key_paths(value, (*prefix, i))


def _get(node, path):
    for part in path:
        node = node[part]
    return node


def _misspell(key: str, draw) -> str:
    if not key:
        return "x"
    i = draw(st.integers(0, len(key) - 1))
    op = draw(st.sampled_from(["drop", "double", "swap", "upper"]))
    if op == "drop":
        return key[:i] + key[i + 1:] or "x"
    if op == "double":
        return key[:i] + key[i] + key[i:]
    if op == "upper":
        return key[:i] + key[i].upper() + key[i + 1:]
    return key[:i] + key[i + 1:i + 2] + key[i:i + 1] + key[i + 2:]


@st.composite
def mutated_spec(draw):
    """A shipped spec with one to three structure-aware mutations: a value replaced by a hostile
    one, a key removed, misspelt or added, a value wrapped or copied from elsewhere."""
    name = draw(st.sampled_from(sorted(SPEC_DATA)))
    data = copy.deepcopy(SPEC_DATA[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in key_paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        last = path[-1]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "misspell", "add", "wrap", "copy"]))
        if op == "set":
            parent[last] = draw(hostile_values)
        elif op == "delete":
            del parent[last]
        elif op == "misspell" and isinstance(parent, dict):
            parent[_misspell(str(last), draw)] = parent.pop(last)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(WORDS))] = draw(hostile_values)
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"type": parent[last]}]))
        elif op == "copy":
            parent[last] = copy.deepcopy(_get(data, draw(st.sampled_from(paths))[:1]))
    as_json = draw(st.booleans())
    text = json.dumps(data, indent=1) if as_json else yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return (".json" if as_json else ".yaml"), text.encode("utf-8", "surrogatepass")


YAML_FRAGMENTS = [
    "!!int abc", "!!int ''", "!!bool maybe", "!!timestamp notadate", "!!float x", "!!binary zz", "!!set {a}",
    "!!python/object/apply:os.system ['true']", "!!str", "!custom x", "&a [*a]", "*undefined", "<<: {a: 1}",
    "&x {a: &y [*x]}", "9" * 5000, "-" + "9" * 4400, "0x" + "f" * 80, "[" * 300, "{a: " * 200, "]" * 50,
    "? [a, b]\n: c", "%YAML 1.1\n---", "---\n---", "...", "|\n  block", ">-\n  folded", "'unclosed", '"\\x"',
    '"\\ud800"', "\t", "\r", "\r\n", "\ufeff", "\u2028", "\x85", "\x00", "\x07", "\x1b[31m", "#", ": :", "- - -",
]


@st.composite
def raw_spec(draw):
    """A shipped spec's text with raw-byte and YAML-level damage: fragments inserted (tags,
    aliases, deep brackets, control characters), random bytes, truncation."""
    text = SPEC_TEXTS[draw(st.sampled_from(sorted(SPEC_TEXTS)))].encode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["fragment", "fragment", "bytes", "truncate", "value"]))
        if op == "fragment":
            piece = draw(st.sampled_from(YAML_FRAGMENTS)).encode("utf-8", "surrogatepass")
        elif op == "bytes":
            piece = draw(st.binary(min_size=1, max_size=6))
        elif op == "value":
            # Replace one value after a `key: ` with a fragment, keeping the structure.
            colon = text.find(b": ", at)
            if colon < 0:
                continue
            end = text.find(b"\n", colon)
            end = len(text) if end < 0 else end
            fragment = draw(st.sampled_from(YAML_FRAGMENTS)).encode("utf-8", "surrogatepass")
            text = text[:colon + 2] + fragment + text[end:]
            continue
        else:
            text = text[:at]
            continue
        text = text[:at] + piece + text[at:]
    return text


@st.composite
def overrides(draw):
    """`--set KEY=VALUE` strings: real and misspelt key paths of the spec, hostile YAML values."""
    name = draw(st.sampled_from(sorted(SPEC_DATA)))
    paths = [".".join(map(str, p)) for p in key_paths(SPEC_DATA[name]) if p]
    result = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.one_of(st.sampled_from(paths), st.sampled_from(paths).map(lambda p: p + ".x"),
                             st.text(max_size=10), st.sampled_from(["", "=", "a..b", "model.blocks.99.units", "seed.0"])))
        value = draw(st.one_of(
            hostile_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()),
            st.sampled_from(YAML_FRAGMENTS),
            st.text(max_size=10),
        ))
        result.append(f"{key}={value}" if draw(st.integers(0, 9)) else key)
    return name, result


@st.composite
def extends_chain(draw):
    """Files `s0..sN` where each extends the previous with a small hostile overlay; sometimes a
    cycle, a missing parent or a non-string `extends`."""
    name = draw(st.sampled_from(sorted(SPEC_TEXTS)))
    length = draw(st.integers(1, 40))
    files = {"s0.yaml": SPEC_TEXTS[name]}
    paths = [p for p in key_paths(SPEC_DATA[name]) if p and all(isinstance(k, str) for k in p)]
    for i in range(1, length + 1):
        overlay: dict = {"extends": f"s{i - 1}.yaml"}
        for _ in range(draw(st.integers(0, 2))):
            path = draw(st.sampled_from(paths))
            node = overlay
            for part in path[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node[path[-1]] = draw(hostile_values)
        files[f"s{i}.yaml"] = yaml.safe_dump(overlay, sort_keys=False)
    twist = draw(st.sampled_from(["none", "none", "cycle", "missing", "number"]))
    if twist == "cycle":
        files["s0.yaml"] = f"extends: s{length}.yaml\n" + files["s0.yaml"]
    elif twist == "missing":
        files["s1.yaml"] = files["s1.yaml"].replace("extends: s0.yaml", "extends: absent.yaml")
    elif twist == "number":
        files["s1.yaml"] = files["s1.yaml"].replace("extends: s0.yaml", "extends: 7")
    return files, f"s{length}.yaml"
