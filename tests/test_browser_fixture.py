"""The browser fixture itself works: a page renders and a broken image is reported as not loaded."""

import base64


def test_headless_chromium_renders_and_reports(page, tmp_path):
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                           "AAAABJRU5ErkJggg==")
    (tmp_path / "dot.png").write_bytes(png)
    (tmp_path / "index.html").write_text('<h1>hi</h1><img id="ok" src="dot.png"><img id="bad" src="missing.png">')
    page.goto((tmp_path / "index.html").as_uri())
    page.wait_for_load_state("load")
    assert page.inner_text("h1") == "hi"
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [1, 0]
