"""The preflight runs once: the notebook's preflight cell renders every message, and its send cell
sends those very messages without rendering them again; a send with no preflight before it runs
the same preflight itself, and a preflight that found a problem stops the send the same way."""
import email
from email import policy

import pytest
from conftest import people

import mailnb
from mailnb import PreflightError


class CountingTemplate(mailnb.Template):
    """A template that counts its renderings (one a message, in this process: under 4,000 rows
    the preflight does not fan out)."""

    renders = 0

    def render(self, *args, **kwargs):
        type(self).renders += 1
        return super().render(*args, **kwargs)


def job(tmp_path, smtp, df, **kw):
    csv = tmp_path / "people.csv"
    df.to_csv(csv, index=False)
    CountingTemplate.renders = 0
    template = CountingTemplate("Hello {{ first_name }}", text="Your slot is {{ slot }}.")
    return mailnb.Job(campaign="once", recipients=str(csv), template=template, host="127.0.0.1",
                      port=smtp.port, security="none", from_addr="news@example.org",
                      journal=str(tmp_path / "j.sqlite"), new_journal=True, progress=False, **kw)


def test_a_preflighted_job_sends_what_its_preflight_rendered(tmp_path, smtp):
    j = job(tmp_path, smtp, people(6))
    assert j.preflight().empty
    assert CountingTemplate.renders == 6                 # every row, once
    result = j.send()
    assert CountingTemplate.renders == 6                 # the send rendered nothing again
    assert (result["status"] == "sent").sum() == 6
    bodies = sorted(email.message_from_bytes(m.data, policy=policy.default)
                    .get_body().get_content().replace("\r\n", "\n") for m in smtp.recorder.messages)
    assert bodies == sorted(f"Your slot is {s}.\n" for s in people(6)["slot"])


def test_without_a_preflight_the_send_runs_it_once(tmp_path, smtp):
    j = job(tmp_path, smtp, people(4))
    j.send()
    assert CountingTemplate.renders == 4
    assert len(smtp.recorder.messages) == 4


def test_a_problem_the_preflight_found_stops_the_send(tmp_path, smtp):
    df = people(3)
    df.loc[1, "slot"] = None                             # an empty merge field: an error
    j = job(tmp_path, smtp, df)
    problems = j.preflight()
    assert problems["severity"].tolist() == ["error"] and problems["row"].tolist() == [1]
    with pytest.raises(PreflightError, match="row 1 is line 3"):
        j.send()
    assert smtp.recorder.messages == []
    assert CountingTemplate.renders == 3                 # the send did not render them again
