"""Property tests: generated policy packs, waivers and thresholds files through the real
``guard policy check``. Whatever the file holds, a handled outcome (tests/fuzzing.py)."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from fuzzing import FUZZ, assert_handled
from hypothesis import given
from hypothesis import strategies as st
from test_hardening_policies import PACK

SCALARS = st.one_of(
    st.sampled_from(["2026-02-30", "!!int x", "!!binary aGk=", "!!python/name:os.system", "~", "yes", "1e400",
                     "0x1F", ".inf", "-.nan", "9" * 5000, "'quoted'", "[a, b]", "{a: 1}", "*missing",
                     "&a [*a]", "|", ">-", "%", "@", "`", '"\\ud800"', "\x1b[31m", "\u202e", "*", "?", ""]),
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
PACK_LINES = PACK.splitlines()


@st.composite
def mutated_packs(draw: st.DrawFn) -> str:
    """The valid pack with a few lines' values replaced, lines dropped or duplicated, or
    anchors and deep nesting added."""
    lines = list(PACK_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "drop", "dup", "indent", "nest"]))
        key, sep, _ = lines[i].partition(":")
        if action == "value" and sep:
            lines[i] = f"{key}: {draw(SCALARS)}"
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = " " * draw(st.integers(0, 7)) + lines[i].lstrip()
        elif action == "nest" and sep:
            depth = draw(st.integers(1, 400))
            lines[i] = f"{key}: " + "[" * depth + "x" + "]" * depth
        if not lines:
            break
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str | bytes, suffix: str) -> Path:
    path = tmp_path / f"{uuid4().hex}{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(text=st.one_of(mutated_packs(), st.binary(max_size=300)))
def test_any_pack_file(tmp_path: Path, text: str | bytes) -> None:
    assert_handled(["policy", "check", str(_write(tmp_path, text, ".yaml"))], allowed=(0, 2))


WAIVER = {"control": "MY-01", "target": "*", "reason": "known", "approver": "dpo@example.com",
          "expires": "2027-01-31"}


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(sorted(WAIVER) + ["extra"]), SCALARS, max_size=4),
       toml=st.booleans())
def test_any_waivers_file(tmp_path: Path, fields: dict[str, str], toml: bool) -> None:
    waiver = {**WAIVER, **fields}
    if toml:
        body = "[[waivers]]\n" + "".join(f"{k} = {v}\n" for k, v in waiver.items())
    else:
        body = "waivers:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in waiver.items()) + "\n"
    pack = _write(tmp_path, PACK, ".yaml")
    waivers = _write(tmp_path, body, ".toml" if toml else ".yaml")
    assert_handled(["policy", "check", str(pack), "--waivers", str(waivers)], allowed=(0, 2))


@FUZZ
@given(value=SCALARS, key=st.sampled_from(["min_robust_accuracy", "unknown", "min robust", "a.b"]))
def test_any_thresholds_file(tmp_path: Path, value: str, key: str) -> None:
    pack = _write(tmp_path, PACK, ".yaml")
    thresholds = _write(tmp_path, f"[thresholds]\n{key} = {value}\n", ".toml")
    assert_handled(["policy", "check", str(pack), "--thresholds", str(thresholds)], allowed=(0, 2))
