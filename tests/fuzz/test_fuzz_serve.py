"""Fuzzing `kbuild serve`'s predict endpoint: every request is answered 200 with one prediction
per instance, or a 4xx with an error message -- never a 500, and the server keeps serving."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.outcomes import record

pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from kbuild.serve import ServerSettings, create_app, load_repository  # noqa: E402
from tests.test_robust_serve import _save_length_model  # noqa: E402

texts = st.one_of(st.text(max_size=8), st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["text", "instances", "x"]), inner, max_size=3)),
    max_leaves=8,
)


RAW = object()
"""A body built as bytes, not from a JSON value."""


@st.composite
def request(draw):
    shape = draw(st.sampled_from(["instances", "instances", "inputs", "named", "any", "deep", "raw"]))
    if shape == "instances":
        data = {"instances": draw(st.lists(st.one_of(texts, json_values), max_size=5))}
    elif shape == "inputs":
        data = {"inputs": draw(st.one_of(st.lists(texts, max_size=5), json_values))}
    elif shape == "named":
        data = {"instances": draw(st.lists(st.fixed_dictionaries({"text": texts}), max_size=4)),
                "signature_name": draw(st.one_of(st.just("serving_default"), json_values))}
    elif shape == "deep":
        depth = draw(st.integers(1, 3000))
        data = RAW
        body = b'{"instances": ' + b"[" * depth + b'"a"' + b"]" * depth + b"}"
    elif shape == "raw":
        data, body = RAW, draw(st.binary(max_size=40))
    else:
        data = draw(json_values)
    if data is not RAW:
        body = json.dumps(data).encode("utf-8")  # lone surrogates travel as \\ud800 escapes
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
    if encoding != "utf-8":
        try:
            body = body.decode("utf-8").encode(encoding)
        except (UnicodeDecodeError, UnicodeEncodeError):
            pass
    content_type = draw(st.sampled_from([None, "application/json", "application/json; charset=utf-8",
                                         "application/x-www-form-urlencoded", "text/plain", "application/xml",
                                         "application/json; charset=latin-1", "multipart/form-data"]))
    return body, content_type


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    _save_length_model(root / "length" / "1")
    with TestClient(create_app(load_repository(root), ServerSettings(max_body_bytes=1 << 16))) as test_client:
        yield test_client


@given(case=request())
def test_predict_requests(client, case):
    body, content_type = case
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/models/length:predict", content=body, headers=headers)
    assert response.status_code in (200, 400, 404, 413, 415), (response.status_code, response.text)
    if response.status_code == 200:
        sent = json.loads(body.decode("utf-8"))
        count = len(sent["instances"]) if "instances" in sent else len(sent["inputs"])
        assert len(response.json().get("predictions", response.json().get("outputs"))) == count
        record("serve", "accepted_valid")
    else:
        assert response.json()["error"]
        record("serve", "clean_error")
    ok = client.post("/v1/models/length:predict", content=b'{"instances": ["ab"]}')
    assert ok.status_code == 200 and ok.json() == {"predictions": [2]}
