"""Fast tier: a bounded fuzz test of the REST API with hypothesis: not one 500.

Every route the app registers (``app.url_map``) gets generated requests: odd JSON (deep nesting, huge
numbers, wrong types, unicode with lone surrogates sent escaped, invalid UTF-8), odd query strings and
path segments (percent-encoded bytes that are not UTF-8, ``..``, very long), odd forms and uploads, and
odd headers (Host variations, Origin, tokens, Range, cache checks).  Real job ids, with published
outputs and sources whose names hold a newline, quotes or ``.html``, take the routes past their 404s.

Hypothesis generates the values (text, JSON trees, bytes); the shape of each request (which body, which
headers, which mix) is picked with a ``Random`` that hypothesis seeds, so the mix stays even rather
than collapsing onto a few variants.  Derandomized with a fixed number of examples: every run of the
same code sends the same requests (hypothesis also mixes in constants it finds in the project's
modules, so a change to the code, or a run that imports other modules, may change the mix).  Flask's
test client, the in-memory queue and a temp store: no Redis.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.api.live import monitor
from tests.fast import write_wav
from tests.test_api_routes import NO_BURN, complete, new_job

MIN_REQUESTS = 2000
PER_EXAMPLE = 4               # requests sent by one hypothesis example
SPECIAL = ["\ud800", "\udfff", "\udc80", "a\ud800b", "\x00", "..", "../..", "/", "//", "%", "%00", "%ff", "²", "٣",
           "\u202e", "\ufeff", "日本語", "😀", " ", "\n", "\r\n", "'\"<>&;", "<script>", "NaN", "-1", "0", "1e999",
           "9" * 5000, "a" * 5000, "/etc/passwd", "C:\\x", "null", "true", "[]", "{}", "tiny.en", "base", "auto", "en",
           "high", "normal", "asc", "desc", "name", "size", "mtime", "1", "2", "200", "completed", "pending"]
HOSTS = ["localhost", "localhost:5050", "127.0.0.1:5050", "[::1]:5050", "LOCALHOST", "localhost.", "evil.example",
         "evil.example:5050", "localhost.evil.example", "127.0.0.1.nip.io", "[::1", "[::1]x", "localhost:abc",
         "localhost:99999999", "", " ", "a" * 300, "l\xf6calhost", "localhost:5050@evil", "::1", "0.0.0.0"]
HEADERS = {"Origin": ["http://localhost", "http://evil.example", "null"],
           "Referer": ["http://localhost/", "http://evil.example/x"],
           "X-API-Token": ["s3cret", "s3cret ", ""], "Authorization": ["Bearer s3cret", "Bearer", "Basic eA=="],
           "Range": ["bytes=0-1", "bytes=5-1", "bytes=-0", "bytes=0-99999999999999999999", "x", "bytes=0-0,1-1"],
           "If-None-Match": ['"x"', "*"], "If-Modified-Since": ["Sun, 06 Nov 1994 08:49:37 GMT", "garbage"],
           "Content-Length": ["0", "-1", "99999999999"], "Accept": ["text/html", "*/*", "application/json"]}
QUERY_KEYS = ["path", "page", "page_size", "status", "batch_id", "q", "sort", "order", "filter", "videos_only",
              "outputs", "inline", "days", "x"]
QUERY_VALUES = ["1", "2", "0", "name", "size", "desc", "true", "completed", "clip", "²", "1e3", "-1", "9" * 40]
ARGUMENTS = {"kind": ["scc", "srt", "vtt", "dfxp", "json", "video", "VTT", "html"],
             "method": ["active", "reserved", "scheduled", "stats", "registered", "ping", "shutdown"],
             "filename": ["app.js", "app.css", "vendor", "../core/api/__init__.py", "..%2f..%2fREADME.md"]}
BODY_KEYS = ["paths", "options", "priority", "force", "model", "language", "burn_in", "rows", "token"]
METHODS = ["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "PATCH"]


@pytest.fixture(autouse=True)
def fresh_queue_monitor():
    monitor.last_snapshot, monitor.taken_at = None, 0.0
    yield
    monitor.last_snapshot, monitor.taken_at = None, 0.0


# --- values (hypothesis) -------------------------------------------------------------------------------

odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(SPECIAL),
    st.builds(lambda a, b: a + b, st.text(max_size=8), st.sampled_from(SPECIAL)),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "/", ".", "日", "\ud800", "%"]), st.integers(100, 5000)),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**40, 10**40),
                    st.floats(allow_nan=True, allow_infinity=True), odd_text)
json_values = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.one_of(st.sampled_from(BODY_KEYS), odd_text), kids, max_size=4)),
    max_leaves=12)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)


def raw_bodies(depth: int) -> list[bytes]:
    """JSON that Python's parser chokes on, or that is not what any route expects."""
    return [b"[" * depth + b"]" * depth, b'{"paths": ' + b"[" * depth + b"]" * depth + b"}",
            b'{"paths": ["/x"], "options": ' + b'{"a":' * depth + b"1" + b"}" * (depth + 1),
            b"1" * 5000, b'{"paths": [' + b"1" * 5000 + b"]}", b'{"paths": ["/x"], "priority": 1e999}',
            b'"\xed\xa0\x80"', b'{"paths": ["\xff\xfe"]}', b"\xef\xbb\xbf{}", b'{"paths": [', b"", b"\x00" * 10,
            b'{"paths": ["\\ud800"], "priority": {"a": []}}', b'{"paths": "x", "options": []}',
            b'{"paths": ["\\ud800", "\\udfff/x"], "options": {"model": "\\ud800", "language": "\\udc80"}}',
            b'{"paths": [{"$gt": ""}], "force": "true", "priority": ["high"]}', b"NaN", b"-Infinity"]


def segment(text: str) -> str:
    """A path segment or query value, percent-encoded as UTF-8 (lone surrogates as their raw bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# --- request shapes (a seeded Random picks, hypothesis supplies the values) ---------------------------

def body(draw, rnd, files: list[str]) -> dict:
    """Test-client kwargs: JSON shaped like a batch, any JSON, odd JSON, raw bytes, a form, an upload."""
    kind = rnd.choice(["shaped", "shaped", "json", "odd-json", "odd-json", "raw", "form", "multipart", "none"])
    if kind == "shaped":
        def maybe(good, strategy):
            return rnd.choice(good) if rnd.random() < 0.7 else draw(strategy)

        paths = [rnd.choice(files) if rnd.random() < 0.7 else draw(st.one_of(odd_text, json_values))
                 for _ in range(rnd.randint(0, 4))]
        shaped = {"paths": paths if rnd.random() < 0.8 else draw(json_values),
                  "options": maybe([NO_BURN, {**NO_BURN, "rows": 3, "language": "auto"}], st.one_of(
                      st.dictionaries(st.sampled_from(["model", "language", "burn_in", "rows"]), json_values,
                                      max_size=4), json_values)),
                  "priority": maybe(["high", "normal"], json_values), "force": maybe([True, False], json_values)}
        for key in rnd.sample(list(shaped), rnd.randint(0, 2)):
            del shaped[key]
        return {"data": json.dumps(shaped).encode(), "content_type": "application/json"}
    if kind == "json":
        return {"data": json.dumps(draw(json_values)).encode(), "content_type": "application/json"}
    if kind == "odd-json":
        data = rnd.choice(raw_bodies(rnd.choice([2, 5_000, 100_000])))
        return {"data": data, "content_type": "application/json"}
    if kind == "raw":
        data = draw(st.binary(max_size=64)) if rnd.random() < 0.5 else rnd.choice(raw_bodies(5_000))
        return {"data": data, "content_type": rnd.choice(["text/plain", "application/json; charset=latin-1",
                                                          "application/x-www-form-urlencoded", ""])}
    if kind == "form":
        return {"data": draw(st.dictionaries(st.sampled_from(["token", "model", "burn_in", "rows"]), odd_text.filter(
            lambda t: t == t.encode("utf-8", "replace").decode("utf-8")), max_size=3))}
    if kind == "multipart":
        content = WAV[0] if rnd.random() < 0.5 else draw(st.binary(max_size=64))
        name = rnd.choice(["日本語.mp4", "../../x.wav", ".wav", "a.html", "clip.wav", ""]) if rnd.random() < 0.5 \
            else draw(st.text(max_size=30))
        fields = {key: rnd.choice(["", "1", "true", "no", "2", "9", "²", "auto", "tiny.en", "high", "x" * 300])
                  for key in rnd.sample(["model", "language", "burn_in", "rows", "priority"], rnd.randint(0, 3))}
        return {"data": {"file": (io.BytesIO(content), name), **fields}, "content_type": "multipart/form-data"}
    return {}


def headers(draw, rnd) -> dict:
    """Mostly what a browser on this machine sends; now and then a foreign or malformed Host, a
    cross-site Origin, a token, a range or a cache check."""
    out = {}
    if rnd.random() < 0.15:
        out["Host"] = rnd.choice(HOSTS) if rnd.random() < 0.7 else draw(header_text)
    for name, values in HEADERS.items():
        if rnd.random() < 0.12:
            out[name] = rnd.choice(values) if rnd.random() < 0.7 else draw(header_text)
    return out


# --- the test ------------------------------------------------------------------------------------------

WAV: list[bytes] = []


@pytest.fixture
def world(tmp_path, news, client):
    """Sources with awkward names; ``jobs()`` makes a completed job (every output published) and a
    pending one, so each route is aimed at ids that exist (a fuzzed DELETE may remove them)."""
    WAV[:] = [write_wav(tmp_path / "src.wav", 0.5).read_bytes()]
    files = [write_wav(news / name, 0.5) for name in ("clip.wav", 'line\nbreak "q".html', "page.html")]
    (news / "sub").mkdir()

    def jobs() -> list[str]:
        done = new_job(client, files[1], force=True)
        complete(done, {"scc": b"Scenarist_SCC V1.0\n", "srt": b"1\n", "vtt": b"WEBVTT\n", "dfxp": b"<tt/>",
                        "json": b"{}", "video": b"\0\0\0\x18ftyp"})
        pending = new_job(client, files[2], force=True)
        return [done, pending, client.get(f"/api/status/{pending}").get_json()["batch_id"]]

    folders = [str(news), str(news / "sub"), str(news.parent)]
    return {"files": [str(f) for f in files] + folders, "folders": folders, "jobs": jobs}


@pytest.mark.parametrize("variant, minimum", [("open", MIN_REQUESTS), ("token", 500)])
def test_no_request_gets_a_500(app, client, world, settings, queue, variant, minimum):
    """``open``: no API_TOKEN (loopback), every route reachable.  ``token``: API_TOKEN set, requests from a
    few client addresses, so the token check and its throttle are fuzzed too."""
    from core.api import create_app

    if variant == "token":
        app = create_app({**settings, "API_TOKEN": "s3cret"}, queue=queue)
    fuzzed = app.test_client()
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)
    per_rule = -(-minimum // (len(rules) * PER_EXAMPLE)) + 1          # examples per route
    sent: Counter = Counter()
    codes: Counter = Counter()
    failures: list[str] = []
    files, ids = world["files"], []

    def text_or(rnd, draw, values):
        return rnd.choice(values) if rnd.random() < 0.75 else draw(odd_text)

    @st.composite
    def request(draw, rule):
        rnd = draw(st.randoms(use_true_random=True))
        url = rule.rule
        for name in sorted(rule.arguments):
            value = segment(text_or(rnd, draw, ARGUMENTS.get(name, ids)))
            url = url.replace(f"<{name}>", value).replace(f"<path:{name}>", value)
        methods = sorted(rule.methods - {"OPTIONS", "HEAD"})
        method = rnd.choice(methods) if rnd.random() < 0.8 else rnd.choice(METHODS)
        pairs = [(rnd.choice(QUERY_KEYS), text_or(rnd, draw, files + QUERY_VALUES)) for _ in range(rnd.randint(0, 3))]
        if rnd.random() < 0.5:
            pairs.insert(0, ("path", text_or(rnd, draw, world["folders"])))
        qs = "&".join(f"{segment(k)}={segment(v)}" for k, v in pairs)
        kwargs = body(draw, rnd, files) if method in ("POST", "PUT", "PATCH", "DELETE") else {}
        address = rnd.choice(["127.0.0.1", "127.0.0.1", "10.0.0.1", "10.0.0.2", "::1"])
        return rule.rule, method, url + (f"?{qs}" if qs else ""), kwargs, headers(draw, rnd), address

    def send(rule, method, url, kwargs, hdrs, address):
        resp = fuzzed.open(url, method=method, headers=hdrs, environ_overrides={"REMOTE_ADDR": address}, **kwargs)
        sent[rule] += 1
        codes[resp.status_code] += 1
        ok = resp.status_code < 500 or (rule == "/api/health" and resp.status_code == 503)
        if not ok or (resp.status_code >= 400 and url.startswith("/api/") and not resp.is_json):
            failures.append(f"{method} {url[:200]!r} {hdrs} {str(kwargs)[:300]} -> {resp.status_code} "
                            f"{resp.get_data(as_text=True)[:200]}")

    started = time.monotonic()
    for rule in rules:
        ids[:] = world["jobs"]()

        @hsettings(max_examples=per_rule, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
        @given(st.lists(request(rule), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
        def fuzz(batch):
            for one in batch:
                send(*one)

        fuzz()
    took = time.monotonic() - started
    print(f"{sum(sent.values())} requests over {len(sent)} routes in {took:.1f} s; answers {sorted(codes.items())}")
    assert not failures, f"{len(failures)} answers were 5xx or not JSON:\n" + "\n".join(failures[:20])
    assert sum(sent.values()) >= minimum
    assert set(sent) == {rule.rule for rule in rules}, "every route is fuzzed"
    assert min(sent.values()) >= PER_EXAMPLE * per_rule, sent
    if variant == "open":
        # a sanity check that the mix reaches the routes' work, not only their 4xx gates (about a quarter
        # does; hypothesis also draws constants from the project's modules, so the exact mix follows the code)
        assert codes[200] + codes[202] + codes[206] >= sum(sent.values()) // 6, "requests must get past the checks"
    else:
        assert codes[401] and codes[429], "wrong tokens are refused, then throttled"
