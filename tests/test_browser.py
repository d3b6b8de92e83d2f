"""The forms and the campaign notebook as a person sees them: JupyterLab on loopback, Debian's
Chromium driven by Playwright (no browser download), at 760 px wide and without an emoji font.

Screenshots of every step go to ``test-screenshots/browser/`` at the top of the checkout (the
test prints the folder), so a developer can look at what the test saw.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from smtp_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-screenshots" / "browser"
CHROMIUM = "/usr/bin/chromium"
TOKEN = "mailnb-browser-test"
#: what this machine's closed network needs (no calls home, no component updates)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving fresh copies of the notebooks; its kernels see a private
    config folder and journal."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run bash .ci/system-deps.sh as root")
    root = tmp_path / "root"
    root.mkdir()
    for name in ("setup.ipynb", "campaign.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    jcfg = tmp_path / "jupyter-config"
    (jcfg / "labconfig").mkdir(parents=True)
    (jcfg / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "JUPYTER_CONFIG_DIR": str(jcfg),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "MAILNB_CONFIG_DIR": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"),      # the default journal's folder
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MAILNB_PROFILE", "MAILNB_JOURNAL"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urlopen(f"{url}/api/status?token={TOKEN}", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text())
        yield {"url": url, "root": root, "config": tmp_path / "config"}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    print(f"\nscreenshots: {SHOTS}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 760, "height": 1000})
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            pg.screenshot(path=str(SHOTS / "99-last.png"))     # what it ended on
            browser.close()


def shot(page, name: str, target=None) -> None:
    """A screenshot of the window, scrolled to ``target`` (a locator) when given."""
    if target is not None:
        target.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_and_run_all(page, lab, name: str) -> None:
    """Open the notebook and Run All Cells, once its kernel has started (tried at most 3 times:
    a click before the kernel is ready runs nothing)."""
    page.goto(f"{lab['url']}/lab/tree/{name}?token={TOKEN}")
    tab = page.locator(f"li.lm-TabBar-tab:has-text('{name}')").first
    tab.wait_for()
    panel = page.locator(f"[id='{tab.get_attribute('data-id')}']")
    panel.locator(".jp-Cell").first.wait_for()
    for _ in range(3):
        page.wait_for_selector("text=Python 3 (ipykernel) | Idle")
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click("li.lm-Menu-item:has-text('Run All Cells')")
        try:
            panel.locator(".jp-InputPrompt:has-text('[1]')").first.wait_for(timeout=20_000)
            return
        except Exception:
            continue
    pytest.fail(f"{name}: Run All Cells ran nothing")


def field(page, label: str, kind: str = "input"):
    """The input of the form field with this label (ipywidgets: a label and its control)."""
    return page.locator(f".widget-inline-hbox:has(> label:text-is('{label}')) {kind}").first


def set_text(page, label: str, value: str) -> None:
    box = field(page, label)
    box.fill(value)
    box.press("Enter")


def no_cut_labels(page) -> list[str]:
    """The buttons whose label does not fit (what CSS's ellipsis would hide)."""
    return page.eval_on_selector_all(
        ".jupyter-widgets button", "els => els.filter(e => e.offsetParent !== null && "
        "e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)")


def overflowing(page) -> list[str]:
    """Widget texts that run off to the right of their box."""
    return page.eval_on_selector_all(
        ".jupyter-widgets.widget-html", "els => els.filter(e => e.offsetParent !== null && "
        "e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 80))")


@pytest.mark.timeout(240)
def test_setup_forms_and_campaign_notebook_in_jupyterlab(lab, page, smtp):
    from playwright.sync_api import expect
    started = time.monotonic()
    open_and_run_all(page, lab, "setup.ipynb")
    for title in ("SMTP relay", "Sending preferences", "Bounce mailbox"):
        page.locator(f".widget-html b:text-is('{title}')").wait_for()
    page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")   # the whole width
    shot(page, "01-setup-run")
    # a field shown only where it applies: the SES region
    region = page.locator(".widget-inline-hbox:has(> label:text-is('SES region'))")
    assert region.is_hidden()
    field(page, "Provider", "select").select_option(label="Amazon SES")
    region.wait_for(state="visible")
    shot(page, "02-ses-region", region)
    field(page, "Provider", "select").select_option(label="Custom")
    region.wait_for(state="hidden")
    # the relay form for the loopback server; "Requires login" without a username is flagged
    set_text(page, "Server", "127.0.0.1")
    field(page, "Security", "select").select_option("none")
    expect(field(page, "Port")).to_have_value("25")        # the port follows the security
    set_text(page, "Port", str(smtp.port))
    expect(field(page, "Port")).to_have_value(str(smtp.port))
    requires = page.locator(".widget-hbox:has(> .widget-checkbox span[title='Requires login'])")
    requires.locator(".mailnb-failed").wait_for()
    shot(page, "03-login-without-username", requires)
    requires.locator("input[type=checkbox]").uncheck()
    requires.locator(".mailnb-failed").wait_for(state="detached")
    set_text(page, "Test to", "me@example.org")
    set_text(page, "From address", "lab@example.org")
    page.click("button:has-text('Test connection')")
    relay_message = page.locator(".mailnb-mark").filter(has_text="ok")
    page.locator("table:has(td:text-is('EHLO'))").wait_for()
    shot(page, "04-test-connection-ok", page.locator("table:has(td:text-is('EHLO'))"))
    report = page.locator("table:has(td:text-is('EHLO'))")
    assert report.locator(".mailnb-ok").count() >= 2
    assert report.locator(".mailnb-failed").count() == 0
    assert relay_message.count() >= 3
    page.click("button:has-text('Send test message')")
    sent = page.locator(".widget-html:has-text('test message: sent')")
    sent.wait_for()
    shot(page, "05-test-message-sent", sent)
    assert [m.rcpt_tos for m in smtp.recorder.messages] == [["me@example.org"]]
    # a failure looks different: the word, not a glyph a font may lack; long lines wrap
    closed = free_port()
    set_text(page, "Port", str(closed))
    expect(field(page, "Port")).to_have_value(str(closed))
    page.click("button:has-text('Test connection')")
    page.locator("table:has(td:text-is('connect')) .mailnb-failed").wait_for()
    shot(page, "06-test-connection-failed", page.locator(".mailnb-failed"))
    assert no_cut_labels(page) == []
    assert overflowing(page) == []
    set_text(page, "Port", str(smtp.port))
    expect(field(page, "Port")).to_have_value(str(smtp.port))
    page.locator("button:has-text('Save profile')").first.click()
    page.locator(".widget-html:has-text('saved /')").first.wait_for()
    assert (lab["config"] / "profiles" / "default.toml").is_file()
    # the campaign notebook, a dry run on the sample, with that profile
    open_and_run_all(page, lab, "campaign.ipynb")
    out = ".jp-OutputArea-output"
    summary = page.locator(f"{out}:has-text('SUMMARY campaign=my-campaign dry_run=True')")
    summary.wait_for()
    shot(page, "07-campaign-dry-run", summary)
    page.locator(f"{out}:has-text('sendable')").first.wait_for()   # the audience
    assert page.locator("iframe[srcdoc], .jp-RenderedHTMLCommon pre").count() >= 1   # preview
    chart = page.locator(".jp-RenderedImage img[src^='data:image/png']").first
    chart.wait_for()                                               # the chart
    shot(page, "08-campaign-chart", chart)
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']"
                        ":has-text('Traceback')").count() == 0
    assert len(smtp.recorder.messages) == 1                        # a dry run sends nothing
    assert time.monotonic() - started < 180
