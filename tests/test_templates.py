"""Templates: strict, sandboxed, escaped where it must be, and every problem found before sending."""
import math

import pandas as pd
import pytest

from mailnb import Audience, Template, TemplateError
from mailnb.compose.text import html_to_text

ROW = {"first_name": "Ann", "last": "Lee", "email": "ann@example.com", "n": 3}


def test_render_parts_and_escaping():
    t = Template("Hi {{ first_name }} & co", text="Dear {{ first_name }} <b>{{ last }}</b>",
                 html="<p>Dear {{ first_name }}</p>", to_name="{{ first_name }} {{ last }}")
    r = t.render({**ROW, "first_name": "<script>x</script>"}, row_id=7)
    assert r.subject == "Hi <script>x</script> & co"                  # headers are not HTML
    assert r.text.startswith("Dear <script>x</script> <b>Lee</b>")       # text is not escaped
    assert "&lt;script&gt;" in r.html and "<script>" not in r.html      # HTML is
    assert r.to_name == "<script>x</script> Lee"


def test_strict_undefined_names_row_field_line_and_fix():
    t = Template("Hi", text="line one\n{{ first_name }}\n{{ nickname }}")
    with pytest.raises(TemplateError) as info:
        t.render(ROW, row_id=4)
    msg = str(info.value)
    assert "row 4" in msg and "field text" in msg and "line 3" in msg and "'nickname'" in msg
    assert "Add that column" in msg
    assert info.value.row == 4 and info.value.field == "text" and info.value.line == 3


def test_nan_is_an_error_unless_asked():
    row = {**ROW, "last": math.nan}
    t = Template("Hi {{ last }}", text="x")
    with pytest.raises(TemplateError, match=r"row 2, field subject: column 'last' is empty"):
        t.render(row, row_id=2)
    t2 = Template("Hi {{ last }}!", text="x", missing="empty")
    assert t2.render(row).subject == "Hi !"
    # a NaN in a column the template does not use is fine
    assert Template("Hi", text="x").render(row).subject == "Hi"


def test_syntax_error_reports_line():
    t = Template("ok", text="a\nb\n{% if x %}\nno end")
    with pytest.raises(TemplateError, match=r"template text, line \d"):
        t.compile()
    problems = t.preflight(pd.DataFrame([ROW]))
    assert list(problems["field"]) == ["text"] and problems["row"].isna().all()


@pytest.mark.parametrize("evil", ["x\r\nBcc: victim@example.org", "x\nX-Evil: 1", "a\x00b",
                                  "a\u2028b", "tab\there"])
def test_header_injection_refused(evil):
    t = Template("Hello {{ last }}", text="body", to_name="{{ last }}")
    with pytest.raises(TemplateError, match="control character"):
        t.render({**ROW, "last": evil}, row_id=1)
    # the same value in a body is just text
    assert evil in Template("Hi", text="{{ last }}").render({**ROW, "last": evil}).text


def test_sandbox_blocks_attribute_escape():
    t = Template("x", text="{{ first_name.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        t.render(ROW)


def test_html_only_gets_text_part_and_footer_in_both():
    t = Template("S", html="<html><body><h1>Hi {{ first_name }}</h1><p>See <a href='https://e.org/x'>"
                 "this</a></p><script>bad()</script></body></html>", footer="Unsubscribe: reply STOP")
    r = t.render(ROW)
    assert "Hi Ann" in r.text and "this (https://e.org/x)" in r.text and "bad()" not in r.text
    assert r.text.rstrip().endswith("Unsubscribe: reply STOP")
    assert r.html.index("Unsubscribe: reply STOP") < r.html.index("</body>")
    text_only = Template("S", text="Hi").render(ROW, default_footer="-- the team")
    assert text_only.html is None and text_only.text == "Hi\n\n-- the team\n"


def test_html_to_text_lists():
    assert html_to_text("<ul><li>a</li><li>b</li></ul>") == "- a\n\n- b\n"


def test_attachments_column_and_template(tmp_path):
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "3.txt").write_text("three")
    t = Template("S", text="x", attachment_column="files", attachments="{{ n }}.txt",
                 attachment_dir=tmp_path)
    r = t.render({**ROW, "files": "a.pdf"})
    assert [p.name for p in r.attachments] == ["a.pdf", "3.txt"]
    with pytest.raises(TemplateError, match=r"row 5, field attachments: file .*missing.pdf"):
        t.render({**ROW, "files": "missing.pdf"}, row_id=5)


def test_preflight_collects_every_problem(tmp_path):
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
                       "first_name": ["A", None, "C\nBcc: x@example.org", "D"],
                       "files": [None, None, None, str(tmp_path / "nope.pdf")]})
    big = tmp_path / "big.bin"
    big.write_bytes(b"0" * 200_000)
    df.loc[0, "files"] = str(big)
    t = Template("Hi {{ first_name }}", text="x", attachment_column="files")
    problems = t.preflight(Audience(df), max_size=100_000)
    assert list(problems["row"]) == [0, 1, 2, 3]
    assert list(problems["field"]) == ["size", "subject", "subject", "attachments"]
    assert problems["error"].str.contains("row").all()


def test_from_folder_and_markdown(tmp_path):
    (tmp_path / "subject.txt").write_text("Hello {{ first_name }}\n")
    (tmp_path / "body.txt").write_text("Dear {{ first_name }}\n")
    (tmp_path / "body.html").write_text("<p>Dear {{ first_name }}</p>")
    (tmp_path / "to_name.txt").write_text("{{ first_name }} {{ last }}\n")
    (tmp_path / "footer.txt").write_text("Bye")
    r = Template.from_folder(tmp_path).render(ROW)
    assert (r.subject, r.to_name) == ("Hello Ann", "Ann Lee")
    assert r.text == "Dear Ann\n\nBye\n" and "<p>Bye</p>" in r.html
    md = tmp_path / "md"
    md.mkdir()
    (md / "invite.md").write_text("---\nsubject: Invite for {{ first_name }}\nto_name: '{{ last }}'\n"
                                  "---\n# Hello {{ first_name }}\n\n* one\n* two\n")
    r = Template.from_folder(md).render({**ROW, "first_name": "<A&B>"})
    assert r.subject == "Invite for <A&B>" and r.to_name == "Lee"
    assert "<h1>Hello &lt;A&amp;B&gt;</h1>" in r.html and "<li>one</li>" in r.html
    assert r.text.startswith("# Hello <A&B>")
    with pytest.raises(TemplateError, match="does not exist"):
        Template.from_folder(tmp_path / "nowhere")


def test_columns_that_are_not_identifiers():
    r = Template("Due {{ row['Due date'] }}", text="x").render({"Due date": "Monday"})
    assert r.subject == "Due Monday"


def test_preview_shows_html_and_errors():
    df = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "first_name": ["A", None]})
    p = Template("Hi {{ first_name }}", html="<b>{{ first_name }}</b>").preview(Audience(df), n=3)
    assert len(p.items) == 2
    html = p._repr_html_()
    assert "srcdoc" in html and "row 1" in html and "empty" in html
    assert "Subject: Hi A" in repr(p)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40))
def test_one_render_per_row_equals_one_per_part(a, b):
    """The parts are rendered together for speed; the result is what rendering each alone gives."""
    src = dict(subject="S {{ a|trim }}", text="T {{ a }}\n{% set x = 1 %}{{ b }}",
               html="<p>{{ a }}</p>{{ x is defined }}", to_name="{{ b|trim }}",
               footer="F {{ b }}")
    fast, slow = Template(**src), Template(**src)
    slow.compile()
    slow._combined = None
    try:
        want = slow.render({"a": a, "b": b})
    except Exception as err:
        with pytest.raises(type(err)):
            fast.render({"a": a, "b": b})
        return
    got = fast.render({"a": a, "b": b})
    assert (got.subject, got.text, got.html, got.to_name) == \
        (want.subject, want.text, want.html, want.to_name)
