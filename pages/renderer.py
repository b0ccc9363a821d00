"""Draws an env's render() output — a list of plain dicts — on a 2D canvas.

Shapes: rect(x, y, w, h), circle(x, y, r), line(x1, y1, x2, y2, width),
text(x, y, text, size, align), sprite(src, x, y, w, h); all take an optional color.
An RGB frame arrives as image(w, h) with its RGBA ``pixels`` (a Uint8ClampedArray the
channel attached) and fills the canvas, scaled."""

import js

from pages.jsbridge import log

TAU = 6.283185307179586


class CanvasRenderer:
    def __init__(self, canvas, asset_base):
        self.canvas = canvas
        self.ctx = canvas.getContext("2d")
        self.asset_base = asset_base
        self.images = {}
        self.warned = set()
        self.frame_canvas = None  # offscreen, at the frame's own size
        self.frame_ctx = None

    def draw(self, items):
        ctx = self.ctx
        ctx.clearRect(0, 0, self.canvas.width, self.canvas.height)
        for item in items:
            kind = item.get("type")
            color = item.get("color", "#ffffff")
            if kind == "rect":
                ctx.fillStyle = color
                ctx.fillRect(item["x"], item["y"], item["w"], item["h"])
            elif kind == "circle":
                ctx.fillStyle = color
                ctx.beginPath()
                ctx.arc(item["x"], item["y"], item["r"], 0, TAU)
                ctx.fill()
            elif kind == "line":
                ctx.strokeStyle = color
                ctx.lineWidth = item.get("width", 1)
                ctx.beginPath()
                ctx.moveTo(item["x1"], item["y1"])
                ctx.lineTo(item["x2"], item["y2"])
                ctx.stroke()
            elif kind == "text":
                ctx.fillStyle = color
                ctx.font = str(item.get("size", 16)) + "px sans-serif"
                ctx.textAlign = item.get("align", "left")
                ctx.fillText(str(item["text"]), item["x"], item["y"])
            elif kind == "image":
                self._frame(item)
            elif kind == "sprite":
                image = self._image(item["src"])
                if image.complete:
                    ctx.drawImage(image, item["x"], item["y"], item["w"], item["h"])
            elif kind not in self.warned:
                self.warned.add(kind)
                log("render: unknown drawable type", kind)

    def _frame(self, item):
        w, h = item["w"], item["h"]
        pixels = item.get("pixels")
        if pixels is None:
            if "image" not in self.warned:
                self.warned.add("image")
                log("render: image drawable without pixels")
            return
        off = self.frame_canvas
        if off is None or off.width != w or off.height != h:
            off = js.document.createElement("canvas")
            off.width = w
            off.height = h
            self.frame_canvas = off
            self.frame_ctx = off.getContext("2d")
        # putImageData cannot scale, so the frame goes onto a canvas of its own size first
        # and drawImage scales that; without smoothing each pixel stays a crisp block.
        self.frame_ctx.putImageData(js.ImageData.new(pixels, w, h), 0, 0)
        ctx = self.ctx
        ctx.imageSmoothingEnabled = False
        ctx.drawImage(off, 0, 0, self.canvas.width, self.canvas.height)

    def _image(self, src):
        image = self.images.get(src)
        if image is None:
            image = js.Image.new()
            image.src = src if src.startswith("/") else self.asset_base + src
            self.images[src] = image
        return image
