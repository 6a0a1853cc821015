"""Input helpers: Image, Video, Item, Tokens and VideoOptions, and their rendering into the
gateway's request forms (docs/api.md, "input forms").

Media given as bytes or a file path travel as `data:` URIs over HTTP and as msgpack `bin` over
the Unix socket; media given as a URL string (http(s)://, data:, file://) travel as that string.
Files are read when the request that holds them is built, not when the helper is made."""
import base64
import os

# File signatures -> MIME type for data: URIs (the gateway sniffs the bytes itself; the type in
# the URI is informational, but a correct one keeps logs and other servers honest).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
)


def sniff_mime(data, default):
    """The MIME type of image or video file bytes from their signature, else `default`."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    for sig, mime in _SIGNATURES:
        if head.startswith(sig):
            return mime
    return default


class _Media:
    """One image or video file: a source string (URL / data: URI / file:// path on the server),
    bytes, or a local path read when the request is built."""

    _default_mime = "application/octet-stream"
    __slots__ = ("url", "data", "path", "mime")

    def __init__(self, *, url=None, data=None, path=None, mime=None):
        if sum(x is not None for x in (url, data, path)) != 1:
            raise ValueError("give exactly one of url, data, path")
        if url is not None and (not isinstance(url, str) or not url):
            raise TypeError("url must be a non-empty string")
        if data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("data must be bytes")
            if len(data) == 0:
                raise ValueError("data is empty")
            data = bytes(data)
        self.url, self.data, self.mime = url, data, mime
        self.path = os.fspath(path) if path is not None else None

    @classmethod
    def from_path(cls, path, mime=None):
        """A local file, read when the request is built (FileNotFoundError then if missing)."""
        return cls(path=path, mime=mime)

    @classmethod
    def from_bytes(cls, data, mime=None):
        """The file's bytes (PNG/JPEG/... for images; MP4/WebM/... for videos)."""
        return cls(data=data, mime=mime)

    @classmethod
    def from_url(cls, url):
        """An http(s):// URL the gateway fetches, a data: URI, or a file:// path under the
        gateway's --media-dir."""
        return cls(url=url)

    def _bytes(self):
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as f:
            b = f.read()
        if not b:
            raise ValueError("%s is empty" % self.path)
        return b

    def source(self, binary):
        """The wire value: the URL string, or the bytes (binary transports) / a data: URI."""
        if self.url is not None:
            return self.url
        b = self._bytes()
        if binary:
            return b
        mime = self.mime or sniff_mime(b, self._default_mime)
        return "data:%s;base64,%s" % (mime, base64.b64encode(b).decode("ascii"))

    def __repr__(self):
        what = self.url if self.url is not None else (
            self.path if self.path is not None else "%d bytes" % len(self.data))
        what = str(what)
        return "%s(%r)" % (type(self).__name__, what if len(what) < 80 else what[:77] + "...")


class Image(_Media):
    """One image. `Image.from_path("cat.jpg")`, `Image.from_bytes(b)`,
    `Image.from_url("https://example.com/cat.jpg")`."""
    _default_mime = "image/png"
    __slots__ = ()


class Video(_Media):
    """One video: a file (`from_path`, `from_bytes`, `from_url`) or its frames
    (`Video.from_frames([...])`, spec 7.3; each frame counts against the gateway's
    --max-visuals)."""
    _default_mime = "video/mp4"
    __slots__ = ("frames",)

    def __init__(self, *, url=None, data=None, path=None, mime=None, frames=None):
        if frames is not None:
            if any(x is not None for x in (url, data, path)):
                raise ValueError("give frames or one of url, data, path")
            frames = [as_image(f) for f in frames]
            if not frames:
                raise ValueError("a video as frames needs at least one frame")
            self.url = self.data = self.path = None
            self.mime = mime
        else:
            super().__init__(url=url, data=data, path=path, mime=mime)
        self.frames = frames

    @classmethod
    def from_frames(cls, frames):
        """A video given as its frames, in order: each an Image, bytes, path or URL string."""
        return cls(frames=frames)

    def source(self, binary):
        if self.frames is not None:
            return [f.source(binary) for f in self.frames]
        return super().source(binary)

    def visual_count(self):
        return len(self.frames) if self.frames is not None else 1

    def __repr__(self):
        if self.frames is not None:
            return "Video(%d frames)" % len(self.frames)
        return super().__repr__()


def as_image(x):
    """An Image from an Image, bytes, a path-like object, or a URL/data: URI string."""
    if isinstance(x, Image):
        return x
    if isinstance(x, (bytes, bytearray, memoryview)):
        return Image.from_bytes(x)
    if isinstance(x, os.PathLike):
        return Image.from_path(x)
    if isinstance(x, str):
        return Image.from_url(x)
    raise TypeError("an image must be an Image, bytes, a path or a URL string, not %s" %
                    type(x).__name__)


def as_video(x):
    """A Video from a Video, bytes, a path-like object, a URL string, or a list of frames."""
    if isinstance(x, Video):
        return x
    if isinstance(x, (list, tuple)):
        return Video.from_frames(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return Video.from_bytes(x)
    if isinstance(x, os.PathLike):
        return Video.from_path(x)
    if isinstance(x, str):
        return Video.from_url(x)
    raise TypeError("a video must be a Video, bytes, a path, a URL string or a list of frames, "
                    "not %s" % type(x).__name__)


class Item:
    """One multimodal item: text parts, images and videos embedded together into one vector,
    with an optional per-item instruction (overrides the request's).

    `text`: a string or list of strings (concatenated with no separator); `images`: an image or
    list of images (Image, bytes, path, or URL string); `videos`: a video or list of videos
    (Video, bytes, path, URL string, or a list of frames); `image`/`video` are singular aliases.
    The gateway puts videos first, then images, then the text, whatever the order here."""

    __slots__ = ("text", "images", "videos", "instruction")

    def __init__(self, text=None, *, images=None, videos=None, image=None, video=None,
                 instruction=None):
        texts = [] if text is None else (list(text) if isinstance(text, (list, tuple)) else [text])
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("text must be a string or a list of strings")
        if image is not None and images is not None:
            raise ValueError("give image or images, not both")
        if video is not None and videos is not None:
            raise ValueError("give video or videos, not both")
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError("instruction must be a string")
        if images is None:
            images = [] if image is None else [image]
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if videos is None:
            videos = [] if video is None else [video]
        elif not isinstance(videos, (list, tuple)):
            videos = [videos]
        self.text = texts
        self.images = [as_image(i) for i in images]
        self.videos = [as_video(v) for v in videos]
        self.instruction = instruction

    def visual_count(self):
        return len(self.images) + sum(v.visual_count() for v in self.videos)

    def render(self, binary):
        o = {}
        if len(self.videos) <= 1:
            if self.text:
                o["text"] = self.text[0] if len(self.text) == 1 else list(self.text)
            if self.images:
                srcs = [i.source(binary) for i in self.images]
                o["image"] = srcs[0] if len(srcs) == 1 else srcs
            if self.videos:
                o["video"] = self.videos[0].source(binary)
        else:  # several videos: only the content-parts form can hold them
            parts = [{"video": v.source(binary)} for v in self.videos]
            parts += [{"image": i.source(binary)} for i in self.images]
            parts += [{"text": t} for t in self.text]
            o["content"] = parts
        if self.instruction is not None:
            o["instruction"] = self.instruction
        return o

    def __repr__(self):
        return "Item(text=%r, images=%r, videos=%r, instruction=%r)" % (
            self.text, self.images, self.videos, self.instruction)


class Tokens:
    """A text item given as token ids (already tokenized with the model's tokenizer)."""

    __slots__ = ("ids",)

    def __init__(self, ids):
        ids = list(ids)
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                              for i in ids):
            raise ValueError("token ids must be a non-empty list of non-negative integers")
        self.ids = ids

    def __repr__(self):
        return "Tokens(%d ids)" % len(self.ids)


class VideoOptions:
    """Per-request video sampling (the request's `video` field), within the operator's limits:
    fps in (0, 60], max_frames 2..4096, max_pixels >= 4096 per frame."""

    __slots__ = ("fps", "max_frames", "max_pixels")

    def __init__(self, fps=None, max_frames=None, max_pixels=None):
        self.fps, self.max_frames, self.max_pixels = fps, max_frames, max_pixels

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


_MEDIA_KEYS = ("image", "video", "image_url", "video_url", "url")


def render(x, binary):
    """The wire form of one input item (or of a raw dict/list such as a `messages` list):
    helpers become their gateway forms, media their sources."""
    if isinstance(x, str):
        return x
    if isinstance(x, Item):
        return x.render(binary)
    if isinstance(x, Tokens):
        return list(x.ids)
    if isinstance(x, Image):
        return {"image": x.source(binary)}
    if isinstance(x, Video):
        return {"video": x.source(binary)}
    if isinstance(x, dict):
        return {k: (_media_value(v, binary) if k in _MEDIA_KEYS else render(v, binary))
                for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [render(v, binary) for v in x]
    if x is None or isinstance(x, (bool, int, float)):
        return x
    raise TypeError("cannot send a %s as an input item" % type(x).__name__)


def _media_value(v, binary):
    # Under a media key of a raw object, an Image/Video (or bytes) stands for its source, e.g.
    # {"type": "image", "image": Image.from_path(...)} or {"video": [frame, frame]}.
    if isinstance(v, (Image, Video)):
        return v.source(binary)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return Image.from_bytes(v).source(binary)
    if isinstance(v, (list, tuple)):
        return [_media_value(f, binary) for f in v]
    if isinstance(v, dict):
        return {k: (_media_value(x, binary) if k in _MEDIA_KEYS else render(x, binary))
                for k, x in v.items()}
    return v


def visual_count(x):
    """How many images, videos and video frames the gateway will count for item `x` against
    --max-visuals (a video file is 1, a video as frames is its frame count)."""
    if isinstance(x, (Item, Video)):
        return x.visual_count()
    if isinstance(x, Image):
        return 1
    if isinstance(x, dict):
        n = 0
        for k, v in x.items():
            if k == "image":
                n += len(v) if isinstance(v, (list, tuple)) else 1
            elif k in ("image_url", "video_url"):
                n += 1
            elif k == "video":
                n += visual_count(v) if isinstance(v, Video) else (
                    len(v) if isinstance(v, (list, tuple)) else 1)
            elif k == "content" and isinstance(v, (list, tuple)):
                n += sum(visual_count(p) for p in v)
        return n
    if isinstance(x, (list, tuple)):
        return sum(visual_count(p) for p in x)
    return 0
