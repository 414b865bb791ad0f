"""Reads an HTML page (a file, or Chromium's --dump-dom output) on stdin and prints what the
report tests check, as JSON: every element with a data-metric (its text, its data-value and the
data-* attributes of its row and table), the data-field texts, the data-empty markers, how many
of each tag, every event-handler attribute, every URL an attribute would load, and the text.

Python's own html.parser does the parsing, so the tests read the page as a parser does, not
by searching its bytes."""

import json
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
URL_ATTRS = {"src", "href", "xlink:href", "action", "formaction", "poster", "data", "srcset", "background"}


class Facts(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.metrics = []
        self.fields = {}
        self.empty = []
        self.tags = {}
        self.events = []
        self.urls = []
        self.text = []
        self.open = []  # records collecting text: (record, depth)

    def context(self, name):
        for tag, attrs in reversed(self.stack):
            if name in attrs:
                return attrs[name]
        return None

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v if v is not None else "") for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for k, v in attrs.items():
            if k.startswith("on"):
                self.events.append([tag, k])
            if k in URL_ATTRS and not (v.startswith("data:") or v.startswith("#")):
                self.urls.append([tag, k, v])
        if tag == "style" or tag == "script":
            pass
        self.stack.append((tag, attrs))
        if "data-metric" in attrs:
            rec = {
                "metric": attrs["data-metric"],
                "value": attrs.get("data-value"),
                "text": "",
            }
            for key in ("data-section", "data-chart", "data-group", "data-hour", "data-stage", "data-code", "data-bucket"):
                v = self.context(key)
                if v is not None:
                    rec[key[5:]] = v
            self.metrics.append(rec)
            self.open.append((rec, len(self.stack)))
        if "data-field" in attrs:
            rec = {"text": ""}
            self.fields[attrs["data-field"]] = rec
            self.open.append((rec, len(self.stack)))
        if "data-empty" in attrs:
            self.empty.append(attrs["data-empty"])
        if tag in VOID:
            self.handle_endtag(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                depth = i + 1
                self.open = [(r, d) for (r, d) in self.open if d < depth]
                del self.stack[i:]
                return

    def handle_data(self, data):
        if any(t in ("style", "script", "title") for t, _ in self.stack):
            return
        self.text.append(data)
        for rec, _ in self.open:
            rec["text"] += data


p = Facts()
p.feed(sys.stdin.read())
p.close()
json.dump(
    {
        "metrics": p.metrics,
        "fields": {k: v["text"].strip() for k, v in p.fields.items()},
        "empty": p.empty,
        "tags": p.tags,
        "events": p.events,
        "urls": p.urls,
        "text": " ".join(" ".join(p.text).split()),
    },
    sys.stdout,
)
