"""Issue 18: `kbuild serve` answers bad Unicode, deep nesting and non-UTF-8 bodies with 400/415
and a message, never a 500, and keeps serving afterwards."""

from __future__ import annotations

import json

import pytest

from kbuild.serve.codec import (
    MAX_JSON_DEPTH,
    BadRequest,
    UnsupportedMediaType,
    check_content_type,
    json_depth,
    parse_body,
)

pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from kbuild.serve import ServerSettings, create_app, load_repository  # noqa: E402

GOOD = {"instances": ["abc", "de"]}


def _save_length_model(path):
    import tensorflow as tf

    class Length(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text, unit="UTF8_CHAR")}

    module = Length()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    _save_length_model(root / "length" / "1")
    with TestClient(create_app(load_repository(root), ServerSettings(max_body_bytes=1 << 20))) as test_client:
        yield test_client


def _post(client, content, content_type="application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/v1/models/length:predict", content=content, headers=headers)


def _still_serves(client):
    response = _post(client, json.dumps(GOOD))
    assert response.status_code == 200 and response.json() == {"predictions": [3, 2]}


@pytest.mark.parametrize("body, fragment", [
    (b'{"instances": ["ok", "\\ud800"]}', "lone surrogate"),
    (b'{"instances": [{"text": "\\udfff x"}]}', "lone surrogate"),
    (b'{"instances": ' + b"[" * 900 + b"]" * 900 + b"}", "nested 901 levels"),
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "levels deep"),
    ('{"instances": ["\u00e9"]}'.encode("utf-16"), "not UTF-8"),
    (b'{"instances": ["caf\xe9"]}', "not UTF-8"),
    (b'{"instances": ["a"', "malformed JSON"),
])
def test_bad_bodies_are_400_and_the_server_keeps_serving(client, body, fragment):
    response = _post(client, body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    _still_serves(client)


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data; boundary=x", "application/json; charset=utf-16"])
def test_other_media_types_are_415(client, content_type):
    response = _post(client, json.dumps(GOOD), content_type)
    assert response.status_code == 415
    assert "not supported" in response.json()["error"]
    _still_serves(client)


@pytest.mark.parametrize("content_type", [None, "application/json; charset=UTF-8", "application/x-www-form-urlencoded",
                                          "application/vnd.api+json"])
def test_json_sent_the_usual_ways_is_accepted(client, content_type):
    response = _post(client, json.dumps(GOOD), content_type)
    assert response.status_code == 200, response.text


def test_escaped_valid_unicode_is_served(client):
    response = _post(client, b'{"instances": ["\\u00e9t\\u00e9", "\\ud83d\\ude00"]}')
    assert response.json() == {"predictions": [3, 1]}


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[[[", "b": [[1]]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
    with pytest.raises(BadRequest):
        parse_body(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(UnsupportedMediaType):
        check_content_type("text/csv")
