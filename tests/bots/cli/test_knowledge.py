"""`threadbot ingest`, `search` and `index list` as a user runs them: the real command."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.cli_runner import env_for, threadbot
from tests.conftest import SAMPLE_DOCS
from tests.core.knowledge.built_sites import sphinx_build


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), EMBEDDINGS="local")


async def test_search_prints_json_lines_in_input_order(env: dict[str, str]):
    _, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env=env)
    assert code == 0, err
    questions = ["How do I reset a conversation?", "what's the weather like?", "EDIT_INTERVAL_MS"]
    out, err, code = await threadbot(
        "search", "--json", "--k", "2", env=env, stdin="\n".join(questions) + "\n"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["question"] for line in lines] == questions
    for line in lines:
        assert list(line) == ["question", "passages"] and len(line["passages"]) <= 2
        for passage in line["passages"]:
            assert list(passage) == ["source", "location", "text", "score"]
            assert (SAMPLE_DOCS / passage["source"]).is_file()  # relative to the folder
            assert isinstance(passage["score"], float) and 0 < passage["score"] <= 1
    first = lines[0]["passages"][0]
    assert first["source"] == "conversations.md"
    assert first["location"] == "Conversations and memory › Forgetting a conversation"
    assert first["text"].startswith("Use `/reset`.")
    assert lines[1]["passages"] == []  # nothing about the weather
    assert lines[2]["passages"][0]["location"] == "Configuration › Streaming"

    out, err, code = await threadbot("search", "where is history kept?", env=env)
    assert code == 0, err
    assert out.startswith("? where is history kept?\n  [")
    assert "conversations.md › Conversations and memory › What threadbot remembers" in out


async def test_ten_thousand_questions_in_one_process(env: dict[str, str]):
    _, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env=env)
    assert code == 0, err
    questions = [f"question {i} about REDIS_URL and reset" for i in range(10_000)]
    # BM25 alone keeps this test quick; bench/retrieval_eval.py times the hybrid mode.
    out, err, code = await threadbot(
        "search", "--json", env={**env, "RETRIEVAL_MODE": "bm25"}, stdin="\n".join(questions)
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 10_000
    assert [json.loads(lines[i])["question"] for i in (0, 4321, 9999)] == [
        questions[0], questions[4321], questions[9999]
    ]  # fmt: skip
    assert all(json.loads(line)["passages"] for line in lines[::997])


async def test_ingest_summary_add_remove_and_index_list(tmp_path: Path, env: dict[str, str]):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nThe VPN password rotates monthly.\n")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "tool.md").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(512))
    (docs / "huge.txt").write_text("x" * 3 * 1024 * 1024)
    (docs / "draft.md").write_text("# Draft\n\nNot yet.\n")
    (docs / ".threadbotignore").write_text("draft.md\n")
    out, err, code = await threadbot("ingest", str(docs), env={**env, "INGEST_MAX_FILE_MB": "2"})
    assert code == 0, err
    assert out.splitlines()[0].startswith(
        "Indexed 1 file; skipped 4 (1 binary, 1 ignored, 1 symlink out of the folder, "
        "1 too large); failed 0. The index holds 1 passage (1 new, 0 already embedded)"
    )
    assert "  skipped (symlink out of the folder): passwd.txt" in out
    out, _, _ = await threadbot("search", "--json", "root", env=env)
    assert "/bin/bash" not in out and "root:" not in out

    more = tmp_path / "more"
    more.mkdir()
    (more / "parking.html").write_text("<h1>Parking</h1><p>Park behind the office.</p>")
    out, err, code = await threadbot("ingest", "--add", str(more), env=env)
    assert code == 0, err
    assert "Indexed 1 file;" in out and "holds 2 passages (1 new, 1 already embedded)" in out
    out, err, code = await threadbot("index", "list", env=env)
    assert code == 0, err
    assert out.startswith("2 files, 2 passages, local:all-MiniLM-L6-v2-int8, built ")
    assert "guide.md" in out and "parking.html" in out

    out, err, code = await threadbot("ingest", "--remove", str(more / "parking.html"), env=env)
    assert code == 0, err
    assert out.startswith("Removed 1 file;") and "holds 1 passage " in out
    out, err, code = await threadbot("ingest", "--remove", str(docs), env=env)
    assert code == 2 and "use --force" in err  # that would leave nothing
    out, err, code = await threadbot("ingest", "--remove", "--force", str(docs), env=env)
    assert code == 0, err
    out, _, _ = await threadbot("index", "list", env=env)
    assert out.startswith("0 files, 0 passages")


async def test_a_second_machine_searches_what_the_first_ingested(
    tmp_path: Path, redis_url: str, make_settings
):
    namespace = make_settings().redis_namespace  # this test's own keys on the shared server
    shared = {"REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace, "INDEX_PART_MB": "0.01"}
    first = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "first"), EMBEDDINGS="local")
    out, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env={**first, **shared})
    assert code == 0, err
    published = out.splitlines()[1]
    assert published.startswith("Published v-") and "parts): workers switch to it within" in out

    second = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "second"), EMBEDDINGS="local")
    out, err, code = await threadbot("search", "where is history kept?", env={**second, **shared})
    assert code == 0, err
    assert "conversations.md › Conversations and memory › What threadbot remembers" in out


async def test_an_ingest_that_cannot_publish_says_so(tmp_path: Path, env: dict[str, str]):
    with socket.socket() as unused:  # bound, never listening: connecting is refused
        unused.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{unused.getsockname()[1]}/0"
        out, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env={**env, "REDIS_URL": url})
    assert code == 4 and out.startswith("Indexed ")  # the progress bar, then one line:
    line = err.splitlines()[-1]
    assert line.startswith(f"threadbot: the index is saved in {tmp_path / 'data' / 'index'} ")
    assert "but was not published to Redis (" in line and "Run the command again" in line


async def test_ingest_of_a_docs_site_folder_counts_what_it_skips(
    tmp_path: Path, env: dict[str, str]
):
    """A built docs site: a few pages among images, stylesheets and scripts. The summary counts
    the skipped files by reason and names only the first few; its counts add up, the same text
    on three pages is one passage and two repeats left out."""
    site = tmp_path / "site"
    (site / "_static").mkdir(parents=True)
    for n in range(3):
        (site / f"page{n}.html").write_text("<h1>Install</h1><p>The same page, copied.</p>")
    for n in range(10):
        for suffix in ("png", "css", "js"):
            (site / "_static" / f"asset{n:02d}.{suffix}").write_text("x")
    out, err, code = await threadbot("ingest", str(site), env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(
        "Indexed 3 files; skipped 30 (30 not a document type); failed 0. The index holds "
        "1 passage (1 new, 0 already embedded; 2 repeats of an indexed text left out)"
    ), lines[0]
    assert lines[1:] == [
        "  skipped (not a document type): _static/asset00.css, _static/asset00.js, "
        "_static/asset00.png and 27 more"
    ]
    assert "reading files" in err and "3/3" in err  # progress from the first file on


async def test_ingest_of_a_sphinx_build_says_what_it_left_out(tmp_path: Path, env: dict[str, str]):
    html = sphinx_build(tmp_path / "html")
    out, err, code = await threadbot("ingest", str(html), env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(
        "Indexed 4 files; skipped 14 (14 generated copy); failed 0. The index holds 5 passages "
        "(5 new, 0 already embedded; 1 repeat of an indexed text left out)"
    ), lines[0]
    assert lines[1:] == [
        "  skipped (generated copy): genindex-H.html, genindex.html, objects.inv and 11 more"
    ]
    out, _, _ = await threadbot("search", "--json", "--k", "4", "where do I get help?", env=env)
    sources = [p["source"] for p in json.loads(out)["passages"]]
    assert "guide/config.html" in sources and "guide/install.html" not in sources
    assert all(source.endswith(".html") for source in sources)


async def test_named_knowledge_bases_are_built_searched_and_listed_apart(
    env: dict[str, str], tmp_path: Path
):
    private = tmp_path / "private"
    private.mkdir()
    (private / "salaries.md").write_text("# Salaries\n\nThe salary review happens in March.\n")
    _, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env=env)
    assert code == 0, err
    out, err, code = await threadbot("ingest", "--kb", "private", str(private), env=env)
    assert code == 0, err
    assert str(tmp_path / "data" / "kbs" / "private") in out

    question = "when is the salary review?"
    out, _, _ = await threadbot("search", "--json", "--kb", "private", question, env=env)
    assert [p["source"] for p in json.loads(out)["passages"]] == ["salaries.md"]
    out, _, _ = await threadbot("search", "--json", question, env=env)  # the default base
    assert "salaries.md" not in [p["source"] for p in json.loads(out)["passages"]]
    # KNOWLEDGE_BASE picks the base a process uses, as --kb does for one command.
    out, _, _ = await threadbot("index", "list", env={**env, "KNOWLEDGE_BASE": "private"})
    assert "1 files, 1 passages" in out and "salaries.md" in out
    out, _, _ = await threadbot("index", "list", "--kb", "default", env=env)
    assert "salaries.md" not in out

    out, err, code = await threadbot("search", "--kb", "Not A Name", "x", env=env)
    assert code == 2 and "--kb 'Not A Name'" in err
