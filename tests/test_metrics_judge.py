"""LLM judge: answer parsing, the local backend, and the HTTP backend against a loopback server."""
import http.server
import json
import threading

import pytest

from biocoach_jax.metrics import judge_scores
from biocoach_jax.metrics.judge import (ACC_SYSTEM, BIO_SYSTEM, HTTPJudge, JudgeError,
                                        LocalJudge, extract_score, parse_score)


@pytest.mark.parametrize("answer,score", [
    ("{'score': 4}", 4), ('{"score": 4}', 4), ("score: 4", 4), ("Score = 3", 3),
    ("  {'score': 5}  ", 5), ("Here you go: {'score': 2}.", 2), ("{'score': '3'}", 3),
    ("{'score': 4.0}", 4), ("5", 5), ("{'score': 1}\n{'score': 1}", 1),
    ("{'Score': 2}", 2),
])
def test_parse_good_answers(answer, score):
    assert parse_score(answer) == score


@pytest.mark.parametrize("answer", [
    "", "I think it is good", "{'score': 6}", "{'score': 0}", "{'score': 3.5}",
    "{'score': 2} or maybe {'score': 4}", "{'rating': 4}", "{'score': 'high'}", None,
])
def test_bad_or_out_of_range_answers_are_none(answer):
    assert parse_score(answer) is None


def test_extract_score_sees_out_of_range_numbers():
    assert extract_score("{'score': 7}") == 7.0 and parse_score("{'score': 7}") is None


def test_judge_scores_with_a_local_generate(rng):
    choices = ["{'score': %d}" % k for k in range(1, 6)] + ["nope", "{'score': 9}"]
    answers = [str(rng.choice(choices)) for _ in range(17)]
    it = iter(answers)
    prompts = []

    def generate(prompt):  # one parameter: wrapped as a LocalJudge
        prompts.append(prompt)
        return next(it)

    pairs = [(f"gt {k}", f"pred {k}") for k in range(len(answers))]
    r = judge_scores(pairs, generate, kind="bio")
    kept = [parse_score(a) for a in answers if parse_score(a) is not None]
    assert r["n_scored"] == len(kept)
    assert r["n_unparsable"] == len(answers) - len(kept)
    assert r["n_out_of_range"] == answers.count("{'score': 9}")
    assert r["mean"] == pytest.approx(sum(kept) / len(kept) if kept else 0.0)
    assert prompts[0].startswith(BIO_SYSTEM) and "gt 0" in prompts[0] and "pred 0" in prompts[0]


def test_acc_prompt_fills_ground_truth_and_prediction():
    seen = []
    r = judge_scores([("Knees out {please}", "Push the knees out")],
                     lambda system, user: seen.append((system, user)) or "{'score': 3}")
    system, user = seen[0]
    assert system == ACC_SYSTEM
    assert "Ground-truth feedback: Knees out {please}\n" in user
    assert "Predicted feedback: Push the knees out\n" in user
    assert "{'score': 3}" in user
    assert r == {"mean": 3.0, "n_scored": 1, "n_unparsable": 0, "n_out_of_range": 0}
    with pytest.raises(ValueError, match="kind"):
        judge_scores([], lambda s, u: "", kind="other")
    joined = LocalJudge(lambda prompt: prompt)("SYS", "USER")
    assert joined == "SYS\n\nUSER"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers chat completions from the server's `answers` list; records each request."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        content = self.server.answers[len(self.server.requests) - 1]
        if content == "<503>":  # a transient server error: the client must retry
            self.send_response(503)
            self.end_headers()
            return
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def judge_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests, server.answers = [], []
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_backend_round_trip(judge_server, monkeypatch):
    host, port = judge_server.server_address
    judge_server.answers = ["{'score': 5}", "score: 2", "no idea"]
    monkeypatch.setenv("BIOCOACH_JUDGE_URL", f"http://{host}:{port}")
    monkeypatch.setenv("BIOCOACH_JUDGE_KEY", "sekret")
    monkeypatch.setenv("BIOCOACH_JUDGE_MODEL", "llama-3-70b-instruct")
    backend = HTTPJudge(timeout_s=10)
    r = judge_scores([("a", "b"), ("c", "d"), ("e", "f")], backend, kind="acc")
    assert r == {"mean": 3.5, "n_scored": 2, "n_unparsable": 1, "n_out_of_range": 0}
    path, headers, body = judge_server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sekret"
    assert body["model"] == "llama-3-70b-instruct"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.6, 0.9, 64)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == ACC_SYSTEM
    assert "Ground-truth feedback: a\n" in body["messages"][1]["content"]


def test_http_backend_retries_transient_errors(judge_server):
    host, port = judge_server.server_address
    judge_server.answers = ["<503>", "{'score': 3}"]
    assert HTTPJudge(url=f"http://{host}:{port}", retries=2)("s", "u") == "{'score': 3}"
    assert len(judge_server.requests) == 2


def test_http_backend_errors_are_clear(judge_server):
    host, port = judge_server.server_address
    bad_path = HTTPJudge(url=f"http://{host}:{port}/elsewhere/chat/completions", retries=1)
    with pytest.raises(JudgeError, match="HTTP 404"):
        bad_path("s", "u")
    with pytest.raises(JudgeError, match="BIOCOACH_JUDGE_URL"):
        HTTPJudge(url="")
    assert HTTPJudge(url=f"http://{host}:{port}/v1").url.endswith(":%d/v1/chat/completions" % port)
