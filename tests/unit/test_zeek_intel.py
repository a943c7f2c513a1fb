"""The Zeek intel writer: exact format, parsing, atomic replacement."""

from __future__ import annotations

import os

import pytest
from ansible_collections.wlcg.soc.plugins.module_utils import zeek_intel as zi


def test_render_exact_format():
    rows = [
        zi.IntelRow("b.example", "Intel::DOMAIN", "src", "d", "u"),
        zi.IntelRow("192.0.2.1", "Intel::ADDR", "src"),
    ]
    assert zi.render(zi.rows_of(rows)) == (
        b"#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n"
        b"192.0.2.1\tIntel::ADDR\tsrc\t-\t-\n"
        b"b.example\tIntel::DOMAIN\tsrc\td\tu\n"
    )
    with_notice = zi.render(zi.rows_of(rows), do_notice=True).splitlines()
    assert with_notice[0].endswith(b"\tmeta.url\tmeta.do_notice")
    assert with_notice[1].endswith(b"\t-\tT")


def test_clean_removes_line_breakers():
    assert zi.clean("a\tb\nc\r\nd\x0be") == "a b c d e"
    assert zi.clean("  ") == "-"
    assert zi.clean(None) == "-"


def test_parse_follows_zeek_rules():
    data = b"# comment\n#fields\tindicator\tindicator_type\tmeta.source\n\n1.2.3.4\tIntel::ADDR\ts\n#x\n"
    rows, fields = zi.parse(data)
    assert fields == ["indicator", "indicator_type", "meta.source"]
    assert rows == [{"indicator": "1.2.3.4", "indicator_type": "Intel::ADDR", "meta.source": "s"}]
    # A space after #fields is not a header for Zeek, so nothing is read.
    assert zi.parse(b"#fields indicator\tindicator_type\n1.2.3.4\tIntel::ADDR\n")[0] == []


def test_write_atomic_replaces_and_skips_equal(tmp_path):
    path = tmp_path / "x.intel"
    assert zi.write_atomic(str(path), b"one\n")
    inode = path.stat().st_ino
    assert not zi.write_atomic(str(path), b"one\n")
    assert path.stat().st_ino == inode  # untouched: Zeek does not re-read it
    assert zi.write_atomic(str(path), b"two\n")
    assert path.read_bytes() == b"two\n"
    assert path.stat().st_ino != inode  # replaced by rename
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.intel"]


def test_write_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.intel"
    path.write_bytes(b"old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        zi.write_atomic(str(path), b"new\n")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.intel"]
