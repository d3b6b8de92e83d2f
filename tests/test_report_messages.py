"""Personalised reports: campaign data in templates, tables for mail programs and inline charts,
sent over a real SMTP socket and read back under email.policy.strict."""
from __future__ import annotations

import email
import email.policy
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.figure
import pandas as pd
import pytest

import mailnb
from mailnb.compose.templates import Template

matplotlib.use("Agg")

REGIONS = ["North", "South", "East", "West", "Centre"]


def _sales() -> pd.DataFrame:
    rows = [(r, m, 1000.0 * (i + 1) + 37.5 * k) for i, r in enumerate(REGIONS)
            for k, m in enumerate(["Jan", "Feb", "Mar"])]
    return pd.DataFrame(rows, columns=["region", "month", "revenue"])


def _campaign(n: int, drawn: Path | None, sales: pd.DataFrame | None = None, name="report",
              **kw):
    """Managers in regions; ``drawn`` (a file) gets a line each time a chart is drawn, in
    whichever process draws it."""
    import matplotlib.pyplot as plt
    sales = _sales() if sales is None else sales

    def trend(row):
        if drawn is not None:
            with open(drawn, "a") as f:
                f.write(f"{row['region']} {os.getpid()}\n")
        fig, ax = plt.subplots(figsize=(3, 2))
        mine = sales[sales["region"] == row["region"]]
        ax.plot(mine["month"], mine["revenue"])
        ax.set_title(row["region"])
        return fig

    people = pd.DataFrame({"email": [f"m{i}@example.com" for i in range(n)],
                           "name": [f"Manager {i}" for i in range(n)],
                           "region": [REGIONS[i % len(REGIONS)] for i in range(n)]})
    tpl = Template(
        "{{ region }}: your figures",
        text="Dear {{ name }},\n\n{{ sales | where(region=region) | table(caption='Revenue') }}\n"
             "{{ trend | chart(alt='Revenue by month', key=region) }}\n",
        html="<p>Dear {{ name }},</p>{{ sales | where(region=region) | table(caption='Revenue') }}"
             "{{ trend | chart(alt='Revenue by month', key=region) }}<p>Regards, the sales team</p>")
    return mailnb.Campaign(name, mailnb.Audience(people), tpl, from_addr="sales@example.org",
                           data={"sales": sales, "trend": trend}, **kw)


def _parts(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.strict)
    assert msg.get_content_type() == "multipart/alternative"
    text, related = msg.get_payload()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, *images = related.get_payload()
    assert html.get_content_type() == "text/html"
    return msg, text.get_content(), html.get_content(), images


def test_two_hundred_managers_in_five_regions_get_their_own_table_and_chart(smtp, journal,
                                                                          tmp_path):
    drawn = tmp_path / "drawn.txt"
    res = mailnb.send(_campaign(200, drawn), mailnb.Relay("127.0.0.1", smtp.port,
                                                          security="none"),
                      journal=journal, progress=None, concurrency=4)
    assert (res["status"] == "sent").all() and len(smtp.recorder.messages) == 200
    draws = [line.split() for line in drawn.read_text().splitlines()]
    assert sorted(r for r, _ in draws) == sorted(REGIONS)     # 5 drawings for 200 messages
    assert os.getpid() not in {int(p) for _, p in draws}      # in worker processes
    sales, charts = _sales(), set()
    for m in smtp.recorder.messages:
        msg, text, markup, images = _parts(m.data)
        region = str(msg["Subject"]).split(":")[0]
        cids = re.findall(r'src="cid:([^"]+)"', markup)
        assert len(cids) == 1 and [i["Content-ID"] for i in images] == [f"<{cids[0]}>"]
        assert images[0].get_content_type() == "image/png"
        charts.add((region, hashlib.sha256(images[0].get_content()).hexdigest()))
        mine = sales[sales["region"] == region]
        shown = re.findall(r"<td[^>]*>([\d,.]+)</td>", markup)
        assert shown == [f"{v:,.2f}" for v in mine["revenue"]]     # only their region's rows
        for value in mine["revenue"]:
            assert re.search(rf"\b(Jan|Feb|Mar)\s+{re.escape(f'{value:,.2f}')}\b", text)
        assert "[Revenue by month]" in text
        assert "<style" not in markup and "class=" not in markup
    assert len(charts) == 5 and len({h for _, h in charts}) == 5


def test_every_cid_resolves_to_one_part_and_identical_images_are_one(tmp_path):
    logo = tmp_path / "logo.png"
    fig = matplotlib.figure.Figure(figsize=(1, 1))
    fig.savefig(logo, format="png")
    tpl = Template("Hi", text="Hi {{ name }}",
                   html="<p>Hi {{ name }}</p>{{ logo | image(alt='Logo') }}"
                        "{{ logo | image(alt='Logo again') }}")
    people = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "name": ["A", "B"]})
    c = mailnb.Campaign("logo", mailnb.Audience(people), tpl, from_addr="x@example.org",
                        data={"logo": str(logo)})
    res = mailnb.send(c, mailnb.Pickup(tmp_path / "out"), journal=tmp_path / "j.sqlite",
                      new_journal=True, progress=None)
    assert (res["status"] == "sent").all()
    for path in sorted((tmp_path / "out").glob("*.eml")):
        _, _, markup, images = _parts(path.read_bytes())
        assert len(images) == 1 and markup.count(f'cid:{images[0]["Content-ID"][1:-1]}') == 2
        assert images[0].get_content() == logo.read_bytes()


def test_a_styler_keeps_its_formats_and_loses_its_classes():
    frame = pd.DataFrame({"item": ["a", "b", "c"], "share": [0.1234, 0.5, 0.3766]})
    styler = frame.style.format({"share": "{:.1%}"}).hide(axis="index")
    tpl = Template("s", text="{{ t | table(max_rows=2) }}", html="<p>x</p>{{ t | table(max_rows=2) }}")
    r = tpl.render({"email": "a@example.com"}, context={"t": styler})
    assert "12.3%" in r.html and "50.0%" in r.html and "37.7%" not in r.html
    assert "and 1 more rows" in r.html and "and 1 more rows" in r.text
    assert "<style" not in r.html and "class=" not in r.html and " id=" not in r.html
    assert re.search(r"text-align: ?right[^>]*>12\.3%", r.html)
    assert re.search(r"a\s+12\.3%", r.text)
    html_only = Template("s", html="<p>Your share:</p>{{ t | table }}")
    text = html_only.render({}, context={"t": frame}).text
    assert "item  share" in text and re.search(r"a\s+0\.12\n", text)   # aligned, not a cell a line


def test_empty_selections_and_size_are_checked_before_anything_is_sent(smtp, journal, tmp_path):
    sales = _sales()
    sales = sales[sales["region"] != "West"]
    relay = mailnb.Relay("127.0.0.1", smtp.port, security="none")
    with pytest.raises(mailnb.PreflightError) as err:
        mailnb.send(_campaign(10, None, sales), relay, journal=journal, progress=None)
    assert "empty" in str(err.value) and "empty='skip'" in str(err.value)
    assert len(err.value.problems) == 2 and not smtp.recorder.messages
    res = mailnb.send(_campaign(10, None, sales, empty="skip"), relay, journal=journal,
                      progress=None)
    by = res.set_index("address")["status"]
    assert (by[["m3@example.com", "m8@example.com"]] == "skipped").all()
    assert len(smtp.recorder.messages) == 8
    assert "empty report" in res.set_index("address").loc["m3@example.com", "reason"]
    with pytest.raises(mailnb.PreflightError, match="over the limit"):
        mailnb.send(_campaign(3, None, name="big"), relay, journal=journal, progress=None,
                    max_size=15_000)      # the chart makes each about 17 KB
    with pytest.raises(mailnb.ConfigError, match="empty must be one of"):
        mailnb.send(_campaign(1, None, empty="maybe"), relay, journal=journal, progress=None)


def test_a_row_callable_s_table_is_true_when_it_has_rows_and_a_drawn_chart_keeps_its_width(
        smtp, journal):
    tpl = Template("s", text="{% if mine %}rows{% else %}none{% endif %}",
                   html="<p>{% if mine %}rows{% else %}none{% endif %}</p>"
                        "{{ trend | chart(alt='Trend', key=region, width=120) }}")
    sales = _sales()
    people = pd.DataFrame({"email": ["a@example.com", "b@example.com"],
                           "region": ["North", "Nowhere"]})

    def trend(row):
        fig = matplotlib.figure.Figure(figsize=(3, 2))
        fig.subplots().plot([1, 2, 3])
        return fig

    c = mailnb.Campaign("truth", mailnb.Audience(people), tpl, from_addr="s@example.org",
                        data={"mine": lambda row: sales[sales["region"] == row["region"]],
                              "trend": trend})
    mailnb.send(c, mailnb.Relay("127.0.0.1", smtp.port, security="none"), journal=journal,
                progress=None)
    got = {m.rcpt_tos[0]: _parts(m.data) for m in smtp.recorder.messages}
    assert got["a@example.com"][1].startswith("rows") and "none" in got["b@example.com"][1]
    img = re.search(r"<img[^>]*>", got["a@example.com"][2]).group(0)
    assert 'width="120"' in img and "data-mailnb" not in img      # drawn later, sized as asked
    assert re.search(r'height="\d+"', img)


def test_a_chart_without_alt_text_is_a_warning(tmp_path):
    fig = matplotlib.figure.Figure(figsize=(1, 1))
    tpl = Template("s", text="see the chart", html="<p>Here is the chart of the month for you "
                   "and your team, with the figures below.</p>{{ f | chart }}")
    problems = tpl.preflight(pd.DataFrame({"email": ["a@example.com"]}), context={"f": fig})
    assert list(problems["severity"]) == ["warning"] and "alt text" in problems["error"][0]


def _report_files(tmp_path):
    sales = _sales()
    sales[sales["region"] != "West"].to_csv(tmp_path / "sales.csv", index=False)
    fig = matplotlib.figure.Figure(figsize=(1, 1))
    fig.savefig(tmp_path / "logo.png", format="png")
    pd.DataFrame({"email": [f"m{i}@example.com" for i in range(5)],
                  "region": REGIONS}).to_csv(tmp_path / "people.csv", index=False)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("{{ region }}")
    (tpl / "body.html").write_text("<p>Your region's revenue, month by month:</p>"
                                   "{{ sales | where(region=region) | table }}"
                                   "{{ logo | image(alt='Our logo') }}")
    return tpl


def _check_reports(smtp):
    got = {m.rcpt_tos[0]: _parts(m.data) for m in smtp.recorder.messages}
    assert sorted(got) == ["m0@example.com", "m1@example.com", "m2@example.com",
                           "m4@example.com"]                     # West (m3) skipped: empty
    _, text, markup, images = got["m0@example.com"]
    assert "1,037.50" in markup and re.search(r"Feb\s+1,037.50", text) and len(images) == 1


def test_report_data_from_the_command_line_and_a_notebook(smtp, tmp_path, config_dir):
    import papermill
    tpl = _report_files(tmp_path)
    cmd = [sys.executable, "-m", "mailnb.cli", "send", "--campaign", "cli", "--recipients",
           str(tmp_path / "people.csv"), "--template", str(tpl), "--from", "s@example.org",
           "--host", "127.0.0.1", "--port", str(smtp.port), "--security", "none",
           "--journal", str(tmp_path / "j.sqlite"), "--new-journal",
           "--data", f"sales={tmp_path / 'sales.csv'}", "--data", f"logo={tmp_path / 'logo.png'}"]
    env = {**os.environ, "MAILNB_CONFIG_DIR": str(config_dir), "HOME": str(tmp_path)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--empty skip" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr and not smtp.recorder.messages
    out = subprocess.run(cmd + ["--empty", "skip"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    _check_reports(smtp)
    smtp.recorder.messages.clear()
    bad = subprocess.run(cmd[:-4] + ["--data", "sales.csv"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert "--data sales=sales.csv" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
    notebook = Path(mailnb.__file__).parent / "notebooks" / "campaign.ipynb"
    papermill.execute_notebook(
        str(notebook), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False,
        kernel_name="python3",
        parameters=dict(campaign="nb", recipients=str(tmp_path / "people.csv"), template=str(tpl),
                        from_addr="s@example.org", host="127.0.0.1", port=smtp.port,
                        security="none", journal=str(tmp_path / "j.sqlite"), dry_run=False,
                        data={"sales": str(tmp_path / "sales.csv"),
                              "logo": str(tmp_path / "logo.png")},
                        empty="skip", progress=False))
    _check_reports(smtp)


def test_the_sample_report_charts_each_participant_s_rows_from_files_alone(smtp, tmp_path,
                                                                           config_dir):
    from mailnb.demo import SAMPLE_REPORT_TEMPLATE, SAMPLE_RESULTS
    job = mailnb.Job(campaign="results", template=SAMPLE_REPORT_TEMPLATE, sample=True,
                     data={"results": SAMPLE_RESULTS}, host="127.0.0.1", port=smtp.port,
                     security="none", from_addr="study@example.org", from_name="Study team",
                     journal=str(tmp_path / "j.sqlite"), new_journal=True, progress=False)
    assert job.preflight().empty
    res = job.send()
    results = pd.read_csv(SAMPLE_RESULTS)
    people = pd.read_csv(Path(SAMPLE_RESULTS).with_name("participants.csv"))
    sent = res[res["status"] == "sent"]
    assert len(sent) == len(smtp.recorder.messages) > 0
    charts = set()
    for m in smtp.recorder.messages:
        _, text, markup, images = _parts(m.data)
        pid = people.set_index("email").loc[m.rcpt_tos[0], "participant_id"]
        mine = results[results["participant_id"] == pid]
        for task, score in zip(mine["task"], mine["score"]):
            assert re.search(rf"{task}\s+{score:,.2f}", text), (task, score, text)
        assert len(images) == 1 and "Your score on each task" in markup
        charts.add(hashlib.sha256(images[0].get_content()).hexdigest())
    assert len(charts) == len(smtp.recorder.messages)     # each participant's own chart
