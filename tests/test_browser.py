"""The chat page and the embeddable widget, driven in a real browser against the real service.

Debian's Chromium runs headless through Playwright for Python; each service runs under uvicorn
on a loopback port. Run only these: ``pytest -m browser``; skip them: ``pytest -m "not browser"``.
Screenshots (desktop 1280x800, phone 375x740) are written to ``test-artifacts/``.

Without Playwright or ``/usr/bin/chromium`` the tests are skipped, except in CI (``CI=true``),
where that is a failure. Two kinds of service are used:

* the real default pipeline (``seeds_pipeline``: real embedder, default reader, seeds indexed)
  for what users see: the Rao Quan answer, the abstention, the widget embedded on another site;
* a pipeline with a fixed test reader (and the fast fake embedder) for the UI mechanics that must
  not depend on the reader's quality: highlighting, keyboard, reload, error state, XSS.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.request import urlopen

import pytest

from api.app import create_app
from qa.ingest import Ingestor
from qa.loaders import make_document
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.types import Passage, ReaderOutput, Span

from .conftest import REPO, SEEDS, FakeEmbedder

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Browser, BrowserContext, Page

    NewPage = Callable[..., Page]

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
TIMEOUT_MS = 30_000  # the real reader on a busy 2-core machine can take a few seconds

QUESTION = "Who closed the 2019 conference?"
# a second seeds question, from the other article
IFLA_QUESTION, IFLA_ANSWER = "How many members does IFLA have?", "more than 1500"
IFLA_TITLE = "The NLC participates in the 2021 World Library and information Congress"
CONFERENCE_TITLE = "2019 Chinese Library Annual Conference is closed"
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'


# ---------------------------------------------------------------------------- infrastructure
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _missing() -> str | None:
    if sync_playwright is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = _missing()
    if missing:
        if _in_ci():
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """``new_page(viewport)``: a page in a fresh context (its own session storage)."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class Service:
    """The real FastAPI app under uvicorn on 127.0.0.1, in a thread; stoppable, restartable."""

    def __init__(self, settings: Settings, pipeline: QAPipeline) -> None:
        self.settings, self.pipeline = settings, pipeline
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        import uvicorn

        config = uvicorn.Config(
            create_app(self.settings, pipeline=self.pipeline),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 120
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        if not self.port:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = self._thread = None


class HostSite:
    """Another origin (another loopback port) serving pages that embed the widget."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                data = (body or "not found").encode()
                self.send_response(200 if body else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def embed(self, path: str, service_url: str) -> str:
        """A page about something else, with the one-line embed snippet; its URL."""
        self.pages[path] = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>City library news</title>"
            "<style>body{font:17px/1.6 Georgia,serif;margin:0;padding:2rem;background:#fff8ec}"
            "main{max-width:40rem;margin:auto}h1{color:#5a2d0c}</style></head><body><main>"
            "<h1>City library news</h1><p>This page belongs to another site. It embeds the "
            "article assistant with one script tag; the chat button is at the bottom right.</p>"
            "<p>Opening hours, events and the reading club are listed below.</p></main>"
            f'<script src="{service_url}/widget.js"></script></body></html>'
        )
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FixedReader:
    """Test double for the UI tests only: answers with a fixed phrase wherever it occurs.

    ``answers`` maps a keyword of the question to the phrase to cite; a question with no known
    keyword gets no span, so the pipeline abstains. A question containing "slowly" takes a
    second, so the typing indicator can be seen.
    """

    name = "fixed-test-reader"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        if "slowly" in question.lower():
            time.sleep(1.0)
        for keyword, phrase in self.answers.items():
            if keyword in question.lower():
                spans = []
                for i, p in enumerate(passages):
                    at = p.text.find(phrase)
                    if at >= 0:
                        spans.append(Span(i, at, at + len(phrase), phrase, 0.9 - 0.1 * len(spans)))
                return ReaderOutput(spans[:top_n])
        return ReaderOutput([])


def fixed_pipeline(
    index_dir: Path, answers: dict[str, str], docs: list[Any] | None = None
) -> QAPipeline:
    """The real pipeline code with the fake embedder and a fixed reader, on its own index."""
    settings = Settings(index_dir=index_dir, embedding_model="fake-embedder")
    embedder = FakeEmbedder()
    ingestor = Ingestor(settings, embedder)  # type: ignore[arg-type]
    if docs is None:
        ingestor.ingest([SEEDS], progress=False)
    else:
        ingestor.ingest_documents(docs, progress=False)
    return QAPipeline(settings, embedder=embedder, reader=FixedReader(answers))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def host_site() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def real_service(seeds_pipeline: QAPipeline, host_site: HostSite) -> Iterator[Service]:
    """The real default pipeline; the host site's origin may embed it (CORS)."""
    settings = seeds_pipeline.settings.model_copy(update={"cors_origins": [host_site.origin]})
    service = Service(settings, seeds_pipeline).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def ui_pipeline(tmp_path_factory: pytest.TempPathFactory) -> QAPipeline:
    index = tmp_path_factory.mktemp("ui") / "index"
    return fixed_pipeline(index, {"who closed": "Rao Quan"})


@pytest.fixture(scope="module")
def ui_service(ui_pipeline: QAPipeline) -> Iterator[Service]:
    service = Service(ui_pipeline.settings, ui_pipeline).start()
    yield service
    service.stop()


# ---------------------------------------------------------------------------- page helpers
def chat(page: Page) -> dict[str, Any]:
    return {
        "input": page.get_by_label("Your question"),
        "send": page.get_by_role("button", name="Send question"),
        "answers": page.locator(".rq-bot:not(.rq-typing) .rq-answer"),
        "users": page.locator(".rq-user"),
        "errors": page.locator(".rq-error"),
        "live": page.locator("[aria-live]"),
    }


def ask(page: Page, question: str) -> None:
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


def record_requests(page: Page) -> list[str]:
    """Every URL the page's context (its tabs included) requests from now on."""
    urls: list[str] = []
    page.context.on("request", lambda r: urls.append(r.url))
    return urls


def assert_contrast(page: Page, selectors: Sequence[str], minimum: float = 4.5) -> None:
    """WCAG contrast of each element's text against its effective background."""
    ratios = page.evaluate(
        """(selectors) => {
          const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
          const lum = ([r, g, b]) => {
            const f = (v) => {
              v /= 255;
              return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
            };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          const find = (sel) => {
            const stack = [document];
            while (stack.length) {
              const root = stack.pop();
              const hit = root.querySelector(sel);
              if (hit) return hit;
              root.querySelectorAll("*").forEach((n) => n.shadowRoot && stack.push(n.shadowRoot));
            }
            return null;
          };
          const out = {};
          for (const sel of selectors) {
            const node = find(sel);
            if (!node) { out[sel] = null; continue; }
            const fg = rgb(getComputedStyle(node).color);
            let bg = null;
            const up = (n) => n.parentElement || n.getRootNode().host;  // out of shadow roots
            for (let n = node; n; n = up(n)) {
              const c = rgb(getComputedStyle(n).backgroundColor);
              if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) { bg = c; break; }
            }
            bg = bg || [255, 255, 255];
            const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
            out[sel] = (a + 0.05) / (b + 0.05);
          }
          return out;
        }""",
        list(selectors),
    )
    for selector, ratio in ratios.items():
        assert ratio is not None, f"{selector} not found"
        assert ratio >= minimum, f"{selector}: contrast {ratio:.2f} < {minimum}"


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def latest_answer(page: Page) -> Any:
    return page.locator(".rq-bot:not(.rq-typing)").last


def open_first_citation(page: Page) -> Any:
    """Open the first citation chip of the latest answer; its passage panel."""
    chip = latest_answer(page).locator(".rq-chip").first
    chip.click()
    expect(chip).to_have_attribute("aria-expanded", "true")
    passage = latest_answer(page).locator(".rq-passage:not([hidden])")
    expect(passage).to_be_visible()
    return passage


# ---------------------------------------------------------------------------- real pipeline
@pytest.mark.parametrize(
    ("question", "answer", "title", "name"),
    [
        (QUESTION, "Rao Quan", CONFERENCE_TITLE, "chat-rao-quan"),
        (IFLA_QUESTION, IFLA_ANSWER, IFLA_TITLE, "chat"),
    ],
)
def test_answer_with_highlighted_citation(
    real_service: Service, new_page: NewPage, question: str, answer: str, title: str, name: str
) -> None:
    page = new_page(DESKTOP)
    requests = record_requests(page)
    page.goto(real_service.url + "/")
    c = chat(page)
    expect(c["input"]).to_be_focused()
    ask(page, question)
    expect(c["users"].last).to_contain_text(question)
    expect(c["answers"].last).to_have_text(answer)
    expect(page.locator(".rq-confidence").last).to_contain_text("confidence")
    expect(c["live"]).to_contain_text(f"Answer: {answer}")

    passage = open_first_citation(page)
    expect(passage.locator("mark")).to_have_text(answer)
    expect(passage.locator(".rq-passage-title")).to_have_text(title)
    shot(page, f"{name}-desktop")
    expect(passage.locator("mark")).to_be_in_viewport()
    page.set_viewport_size(PHONE)
    expect(passage.locator("mark")).to_be_in_viewport()
    assert no_horizontal_scroll(page)
    shot(page, f"{name}-phone")
    # everything came from the service itself: no CDN, no external fonts
    assert requests and all(u.startswith(real_service.url + "/") for u in requests), requests


def test_unanswerable_question_abstains(real_service: Service, new_page: NewPage) -> None:
    page = new_page(DESKTOP)
    page.goto(real_service.url + "/")
    ask(page, "What is the capital of France?")
    abstain = page.locator(".rq-abstain")
    expect(abstain).to_contain_text("I couldn't find this in the articles")
    expect(page.locator(".rq-chip")).to_have_count(0)
    expect(chat(page)["live"]).to_contain_text("I couldn't find this in the articles")
    expect(page.locator(".rq-error")).to_have_count(0)


def test_widget_embedded_on_another_origin(
    real_service: Service, host_site: HostSite, new_page: NewPage
) -> None:
    url = host_site.embed("/news.html", real_service.url)
    page = new_page(DESKTOP)
    requests = record_requests(page)
    page.goto(url)
    assert page.evaluate("location.origin") == host_site.origin != real_service.url
    launcher = page.get_by_role("button", name="Ask the articles: open chat")
    expect(launcher).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    dialog = page.get_by_role("dialog", name="Ask the articles")
    expect(dialog).to_be_hidden()
    shot(page, "widget-closed-desktop")

    launcher.click()
    expect(dialog).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Your question")).to_be_focused()
    ask(page, IFLA_QUESTION)
    expect(chat(page)["answers"].last).to_have_text(IFLA_ANSWER)
    passage = open_first_citation(page)
    expect(passage.locator("mark")).to_have_text(IFLA_ANSWER)
    expect(passage.locator("mark")).to_be_in_viewport()
    link = passage.get_by_role("link", name=re.compile("Open the article"))
    assert link.get_attribute("href").startswith(real_service.url + "/documents/")
    shot(page, "widget-desktop")

    # Escape closes the panel and gives the focus back to the button
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    # the conversation survives a reload, and so does the open panel
    launcher.click()
    page.reload()
    expect(page.get_by_role("dialog", name="Ask the articles")).to_be_visible()
    expect(chat(page)["answers"].last).to_have_text(IFLA_ANSWER)

    page.set_viewport_size(PHONE)
    box = page.locator(".rq-panel").bounding_box()
    assert box is not None and box["width"] == PHONE["width"] and box["height"] == PHONE["height"]
    assert no_horizontal_scroll(page)
    shot(page, "widget-phone")
    foreign = [u for u in requests if not u.startswith((host_site.origin, real_service.url))]
    assert not foreign, foreign


# ---------------------------------------------------------------------------- UI mechanics
def test_citation_highlight_offsets_and_source_view(ui_service: Service, new_page: NewPage) -> None:
    page = new_page(DESKTOP)
    page.goto(ui_service.url + "/")
    c = chat(page)
    ask(page, "Who closed the 2019 conference, slowly?")
    typing = page.locator(".rq-typing")
    expect(typing).to_be_visible()
    expect(c["send"]).to_be_disabled()
    expect(c["answers"].last).to_have_text("Rao Quan")
    expect(typing).to_be_hidden()
    expect(page.locator(".rq-confidence").last).to_have_text("High confidence")

    chips = page.locator(".rq-chip")
    expect(chips.first).to_contain_text(CONFERENCE_TITLE)
    expect(chips.first).to_contain_text("1")
    passage = open_first_citation(page)
    mark = passage.locator("mark")
    expect(mark).to_have_text("Rao Quan")
    expect(mark).to_be_in_viewport()
    # the highlight is exactly the cited span of the document text
    href = passage.get_by_role("link", name=re.compile("Open the article")).get_attribute("href")
    found = re.search(r"/documents/([^?]+)\?start=(\d+)&end=(\d+)#answer$", href)
    assert found, href
    doc_id, start, end = found.group(1), int(found.group(2)), int(found.group(3))
    with urlopen(f"{ui_service.url}/documents/{doc_id}") as r:
        text = json.load(r)["text"]
    assert text[start:end] == "Rao Quan"
    before = passage.locator(".rq-passage-text").evaluate(
        "(q) => q.textContent.slice(0, q.textContent.indexOf(q.querySelector('mark').textContent))"
    )
    assert text.find(before + "Rao Quan") >= 0
    # a second click closes it (a disclosure)
    chip = latest_answer(page).locator(".rq-chip").first
    chip.click()
    expect(chip).to_have_attribute("aria-expanded", "false")
    expect(latest_answer(page).locator(".rq-passage:not([hidden])")).to_have_count(0)
    chip.click()

    # the source view: a new tab, the document as a page scrolled to the highlighted answer
    with page.context.expect_page() as opened:
        page.get_by_role("link", name=re.compile("Open the article")).click()
    view = opened.value
    view.wait_for_load_state()
    assert f"/view/{doc_id}?start={start}&end={end}" in view.url
    expect(view.get_by_role("heading", level=1)).to_have_text(CONFERENCE_TITLE)
    answer = view.locator("mark#answer")
    expect(answer).to_have_text("Rao Quan")
    expect(answer).to_be_in_viewport()
    assert view.evaluate("window.scrollY") > 0
    shot(view, "source-view-desktop")
    view.set_viewport_size(PHONE)
    view.goto(view.url)
    expect(view.locator("mark#answer")).to_be_in_viewport()
    assert no_horizontal_scroll(view)
    shot(view, "source-view-phone")


def test_keyboard_input_rules_reload_and_accessibility(
    ui_service: Service, new_page: NewPage
) -> None:
    page = new_page(DESKTOP)
    page.goto(ui_service.url + "/")
    c = chat(page)
    # empty input cannot be sent, by button or by Enter
    expect(c["send"]).to_be_disabled()
    c["input"].fill("   ")
    expect(c["send"]).to_be_disabled()
    c["input"].press("Enter")
    expect(c["users"]).to_have_count(0)
    # Shift+Enter makes a new line, Enter sends
    c["input"].fill("")
    c["input"].type("Who closed")
    c["input"].press("Shift+Enter")
    c["input"].type("the 2019 conference?")
    expect(c["input"]).to_have_value("Who closed\nthe 2019 conference?")
    expect(c["users"]).to_have_count(0)
    c["input"].press("Enter")
    expect(c["answers"].last).to_have_text("Rao Quan")
    expect(c["users"].last.locator(".rq-text")).to_have_js_property(
        "textContent", "Who closed\nthe 2019 conference?"
    )
    expect(c["input"]).to_have_value("")

    # keyboard only: Tab reaches the citation chip, Enter opens it, the focus is visible
    c["input"].focus()
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        if (
            page.evaluate("document.activeElement.shadowRoot?.activeElement?.className")
            == "rq-chip"
        ):
            break
    chip = latest_answer(page).locator(".rq-chip").last
    expect(chip).to_be_focused()
    outline = chip.evaluate(
        "(n) => getComputedStyle(n).outlineStyle + ' ' + getComputedStyle(n).outlineWidth"
    )
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    page.keyboard.press("Enter")
    expect(chip).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".rq-passage:not([hidden]) mark")).to_have_text("Rao Quan")

    # labels and roles for screen readers, and readable contrast
    expect(page.get_by_role("region", name="Ask the articles")).to_be_visible()
    expect(page.get_by_role("list", name="Conversation")).to_be_visible()
    expect(page.locator("[role=status][aria-live=polite]")).to_have_count(1)
    assert_contrast(
        page,
        [
            ".rq-title",
            ".rq-user .rq-text",
            ".rq-answer",
            ".rq-confidence",
            ".rq-chip-title",
            ".rq-passage-text",
            ".rq-mark",
            ".rq-source-link",
            ".rq-hint",
            ".rq-sources-label",
        ],
    )

    # the conversation survives a reload (session storage)
    ask(page, "What is the capital of France?")
    expect(page.locator(".rq-abstain")).to_have_count(1)
    page.reload()
    expect(c["users"]).to_have_count(2)
    expect(c["answers"].first).to_have_text("Rao Quan")
    expect(page.locator(".rq-abstain")).to_contain_text("I couldn't find this in the articles")
    # "New chat" clears it
    page.get_by_role("button", name="New chat").click()
    expect(c["users"]).to_have_count(0)
    page.reload()
    expect(c["users"]).to_have_count(0)


def test_error_state_when_the_service_stops_and_retry(
    ui_pipeline: QAPipeline, new_page: NewPage
) -> None:
    service = Service(ui_pipeline.settings, ui_pipeline).start()
    try:
        page = new_page(DESKTOP)
        page.goto(service.url + "/")
        c = chat(page)
        ask(page, QUESTION)
        expect(c["answers"].last).to_have_text("Rao Quan")

        service.stop()
        ask(page, QUESTION)
        error = c["errors"].last
        expect(error).to_contain_text("Can't reach the article service")
        expect(c["live"]).to_contain_text("Can't reach the article service")
        expect(c["input"]).to_have_value(QUESTION)  # the question is kept
        retry = error.get_by_role("button", name="Try again")
        expect(retry).to_be_visible()
        assert_contrast(page, [".rq-error-title", ".rq-error-detail", ".rq-retry"])
        shot(page, "error-desktop")

        service.start()  # same port
        retry.click()
        expect(c["errors"]).to_have_count(0)
        expect(c["answers"]).to_have_count(2)
        expect(c["users"]).to_have_count(2)
        expect(c["input"]).to_have_value("")

        # an error answer from the service is an error state too, with its reason
        page.route(
            "**/ask",
            lambda route: route.fulfill(
                status=503, content_type="application/json", json={"detail": "index rebuilding"}
            ),
        )
        ask(page, "Anything?")
        expect(c["errors"].last).to_contain_text("error 503")
        expect(c["errors"].last).to_contain_text("index rebuilding")
        page.set_viewport_size(PHONE)
        shot(page, "error-phone")
    finally:
        service.stop()


def test_widget_refused_by_cors_shows_the_error(
    ui_service: Service, host_site: HostSite, new_page: NewPage
) -> None:
    # ui_service names no CORS origin: another site may load the script but not use the service
    url = host_site.embed("/not-allowed.html", ui_service.url)
    page = new_page(PHONE)
    page.goto(url)
    page.get_by_role("button", name="Ask the articles: open chat").click()
    ask(page, QUESTION)
    expect(chat(page)["errors"].last).to_contain_text("Can't reach the article service")
    expect(page.get_by_role("button", name="Close chat")).to_be_visible()
    page.get_by_role("button", name="Close chat").click()
    expect(page.get_by_role("button", name="Ask the articles: open chat")).to_be_focused()


def test_article_markup_stays_inert(
    tmp_path_factory: pytest.TempPathFactory, new_page: NewPage
) -> None:
    evil = make_document(
        title=f"Gallery notes {XSS_IMG}",
        text=(
            f"The gallery reopened in May. Its curator wrote {XSS_SCRIPT} on the wall and hung "
            f"a label reading {XSS_IMG} beside the door. Visitors found it odd."
        ),
        source="evil.txt",
    )
    index = tmp_path_factory.mktemp("xss") / "index"
    pipeline = fixed_pipeline(index, {"curator": XSS_IMG, "gallery": XSS_SCRIPT}, docs=[evil])
    service = Service(pipeline.settings, pipeline).start()
    try:
        page = new_page(DESKTOP)
        requests = record_requests(page)
        page.goto(service.url + "/")
        c = chat(page)
        ask(page, "What did the curator hang?")
        expect(c["answers"].last).to_have_text(XSS_IMG)
        ask(page, "What was on the gallery wall?")
        expect(c["answers"].last).to_have_text(XSS_SCRIPT)
        passage = open_first_citation(page)
        expect(passage.locator("mark")).to_have_text(XSS_SCRIPT)
        expect(passage.locator(".rq-passage-text")).to_contain_text(XSS_IMG)
        expect(page.locator(".rq-chip-title").first).to_have_text(f"Gallery notes {XSS_IMG}")
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("img").count() == 0
        shot(page, "xss-chat")

        with page.context.expect_page() as opened:
            passage.get_by_role("link", name=re.compile("Open the article")).click()
        view = opened.value
        view.wait_for_load_state()
        vrequests = record_requests(view)
        expect(view.get_by_role("heading", level=1)).to_have_text(f"Gallery notes {XSS_IMG}")
        expect(view.locator("mark#answer")).to_have_text(XSS_SCRIPT)
        expect(view.locator(".doc-text")).to_contain_text(XSS_IMG)
        view.wait_for_timeout(300)
        assert view.evaluate("typeof window.__xss") == "undefined"
        assert view.locator("img, script").count() == 0
        assert not [u for u in requests + vrequests if u.rstrip("/").endswith("/x")]
    finally:
        service.stop()
