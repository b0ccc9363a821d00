"""The non-game scenes of a study — consent, instructions, survey, end — drawn into the
page's #scene section. Each returns when the participant is done with it."""

import js

from pages.jsbridge import sleep_ms

document = js.document


def _clear():
    box = document.getElementById("scene-body")
    box.innerHTML = ""
    document.getElementById("scene-note").textContent = ""
    return box


def _div(html, parent, cls=""):
    el = document.createElement("div")
    if cls:
        el.className = cls
    el.innerHTML = html
    parent.appendChild(el)
    return el


def _button(label, parent, element_id):
    el = document.createElement("button")
    el.id = element_id
    el.textContent = label
    parent.appendChild(el)
    return el


async def _click(*buttons):
    """Resolve with the id of the first of `buttons` clicked."""
    def executor(resolve, reject):
        for b in buttons:
            b.addEventListener("click", lambda event, b=b: resolve(b.id))
    return await js.Promise.new(executor)


async def consent(scene, ui):
    ui.show_scene("consent")
    box = _clear()
    _div(scene["html"], box, "scene-text")
    row = _div("", box, "buttons")
    agree = _button(scene["agree"], row, "consent-agree")
    decline = _button(scene["decline"], row, "consent-decline")
    choice = await _click(agree, decline)
    if choice == "consent-decline":
        return "declined", None
    return "agreed", None


async def instructions(scene, ui):
    ui.show_scene("instructions")
    pages = scene["pages"]
    for i, page in enumerate(pages):
        box = _clear()
        _div(page, box, "scene-text")
        ui.attr("page", i + 1)
        label = "Next" if i + 1 < len(pages) else "Continue"
        await _click(_button(label, _div("", box, "buttons"), "instructions-next"))
    return "read", None


def _question(q, parent):
    block = _div("", parent, "question")
    block.id = "q-" + q["id"]
    _div(q["prompt"] + ("" if q["required"] else " <em>(optional)</em>"), block, "prompt")
    if q["kind"] == "text":
        area = document.createElement("textarea")
        area.name = q["id"]
        area.rows = 3
        block.appendChild(area)
        return
    row = _div("", block, "options " + q["kind"])
    for option in q["options"]:
        label = document.createElement("label")
        radio = document.createElement("input")
        radio.type = "radio"
        radio.name = q["id"]
        radio.value = option
        label.appendChild(radio)
        label.appendChild(document.createTextNode(" " + option))
        row.appendChild(label)


def _answer(q):
    if q["kind"] == "text":
        return str(document.querySelector("textarea[name='" + q["id"] + "']").value).strip()
    checked = document.querySelector("input[name='" + q["id"] + "']:checked")
    return str(checked.value) if checked is not None else ""


async def survey(scene, ui):
    ui.show_scene("survey")
    box = _clear()
    if scene["title"]:
        _div("<h2>" + scene["title"] + "</h2>", box)
    for q in scene["questions"]:
        _question(q, box)
    submit = _button("Submit", _div("", box, "buttons"), "survey-submit")
    while True:
        await _click(submit)
        answers = {}
        missing = []
        for q in scene["questions"]:
            value = _answer(q)
            if value != "":
                answers[q["id"]] = value
            elif q["required"]:
                missing.append(q["id"])
        if not missing:
            return "submitted", answers
        note = "Please answer every question that is not optional."
        document.getElementById("scene-note").textContent = note
        ui.attr("missing", ",".join(missing))


def redirect_url(template, ids):
    url = template
    for key in ids:
        url = url.replace("{" + key + "}", js.encodeURIComponent(ids[key]))
    return url


async def end(scene, ui, ids):
    ui.show_scene("end")
    box = _clear()
    _div(scene["html"], box, "scene-text")
    code = scene["completion_code"]
    if code:
        _div("Your completion code: <strong id='completion-code'></strong>", box)
        document.getElementById("completion-code").textContent = code
    if scene["redirect"]:
        values = dict(ids)
        values["completion_code"] = code or ""
        url = redirect_url(scene["redirect"], values)
        link = document.createElement("a")
        link.id = "end-redirect"
        link.href = url
        link.textContent = "Continue"
        box.appendChild(link)
        ui.attr("redirect", url)
        if scene["redirect_after"] is not None:
            await sleep_ms(scene["redirect_after"] * 1000)
            js.window.location.href = url
