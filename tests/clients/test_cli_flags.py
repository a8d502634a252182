"""The CLI on the SDK's results: connection flags and --json before or after the verb,
GOVGW_TARGET / GOVGW_API_KEY from the environment, one JSON path (the result's
dataclass), and the request id on every error."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clients.cli import build_parser, main
from tests.support import Harness, make_data_dir, start

PB = "population.basic"
PURPOSE = "社会保障待遇资格认证"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("cli-flags") / "data"
    keys, demo = make_data_dir(data_dir, persons=10, entities=4)
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def lookup_args(gw: Harness) -> list[str]:
    pid = gw.demo["adult_resident"]["id_number"]
    return ["lookup", "--dataset", PB, "--subject", pid, "--fields", "name", "--purpose", PURPOSE]


def test_flags_before_or_after_the_verb_mean_the_same(
    gw: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--target", gw.target, "--api-key", gw.keys["counter-wenchuan"]]
    before = run(capsys, *conn, "--json", *lookup_args(gw))
    after = run(capsys, *lookup_args(gw), *conn, "--json")
    mixed = run(capsys, "--json", *lookup_args(gw), *conn)
    docs = [json.loads(out) for code, out, _ in (before, after, mixed) if code == 0]
    assert len(docs) == 3
    assert len({json.dumps(d["records"]) for d in docs}) == 1  # the same answer
    assert len({d["request_id"] for d in docs}) == 3  # three calls, each with its own id
    assert all(d["request_id"].startswith("req_") for d in docs)


def test_target_and_api_key_from_the_environment(
    gw: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVGW_TARGET", gw.target)
    monkeypatch.setenv("GOVGW_API_KEY", gw.keys["counter-wenchuan"])
    code, out, err = run(capsys, *lookup_args(gw), "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["dataset"] == PB
    # A flag still wins over the environment: the public portal may not look this up.
    code, out, err = run(capsys, *lookup_args(gw), "--api-key", gw.keys["public-portal"])
    assert code == 1 and "PERMISSION_DENIED" in err


def test_help_documents_the_environment() -> None:
    text = build_parser().format_help()
    assert "GOVGW_TARGET" in text and "GOVGW_API_KEY" in text


def test_every_error_shows_its_request_id(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    bad = "513221199001011230"  # a wrong check digit
    args = ["verify", "identity", "--name", "张三", "--id-number", bad, "--purpose", "户籍业务办理"]
    conn = ["--target", gw.target, "--api-key", gw.keys["counter-wenchuan"]]
    code, out, err = run(capsys, *args, *conn)
    assert code == 1 and out == ""
    # The CLI's own line (the in-process gateway may log beside it).
    (line,) = [x for x in err.splitlines() if x.startswith("govgw: ")]
    assert line.startswith("govgw: error: INVALID_ARGUMENT ID_NUMBER_CHECK_DIGIT id_number: ")
    assert line.endswith(")") and "(request req_" in line and bad not in line
    code, out, err = run(capsys, *args, *conn, "--json")
    doc = json.loads(out)["error"]
    assert (doc["code"], doc["reason"]) == ("INVALID_ARGUMENT", "ID_NUMBER_CHECK_DIGIT")
    assert doc["violations"][0]["field"] == "id_number" and doc["violations"][0]["reason"]
    assert doc["request_id"].startswith("req_") and doc["request_id"] in err
    # Unauthenticated: no key at all, still a code, a reason and a request id.
    code, _, err = run(capsys, *lookup_args(gw), "--target", gw.target)
    assert code == 1 and "UNAUTHENTICATED" in err and "(request req_" in err


def test_json_is_the_typed_result(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    adult = gw.demo["adult_resident"]
    conn = ["--target", gw.target, "--api-key", gw.keys["counter-wenchuan"]]
    code, out, _ = run(
        capsys, "verify", "identity", "--name", adult["name"], "--id-number",
        adult["id_number"], "--purpose", "户籍业务办理", "--json", *conn,
    )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["result"] == "MATCH" and doc["receipt_claims"]["outcome"] == "MATCH"
    assert set(doc["receipt"]) == {"receipt_id", "key_id", "jws", "commitment_salt"}
    code, out, _ = run(capsys, "catalog", "show", PB, "--json", *conn)
    ds = json.loads(out)
    assert ds["share_class"] == "UNCONDITIONAL" and ds["request_id"].startswith("req_")
    assert {f["sensitivity"] for f in ds["fields"]} <= {"PUBLIC", "INTERNAL", "SECRET"}
    code, out, _ = run(capsys, "receipt", "keys", "--json", *conn)
    keys = json.loads(out)
    assert keys["keys"] and keys["request_id"].startswith("req_")


def test_every_data_directory_verb_says_what_its_data_dir_is() -> None:
    """A newcomer reading `govgw init --help` met a bare `--data-dir DATA_DIR`: which
    directory, and the GOVGW_DATA_DIR the systemd unit sets, were nowhere."""
    import argparse

    def verbs(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from verbs(sub)

    found = 0
    for parser in verbs(build_parser()):
        options = {o for action in parser._actions for o in action.option_strings}
        for action in parser._actions:
            if "--data-dir" in action.option_strings:
                found += 1
                assert action.help, parser.prog
                # Every verb that reads or writes a data directory's stores takes the
                # shared database too (issue 11); the counter page's verbs keep only their
                # clerk file there and reach the gateway over gRPC.
                if not parser.prog.startswith("govgw web"):
                    assert "--database-url" in options, parser.prog
    assert found > 20  # init, serve, backup, restore, pool, callers, audit, keys, …
