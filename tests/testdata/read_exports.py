"""Reads mailvault's exports with libraries mailvault does not use.

Usage: read_exports.py KIND PATH  -> prints one JSON object of counts.
  mbox     a directory tree of .mbox files (Python's mailbox + email)
  maildir  a directory tree of Maildir folders (Python's mailbox + email)
  ics      a directory tree of .ics files (icalendar): events and tasks
  vcf      a directory tree of .vcf files (vobject)
  zip      a zip file (zipfile; then email, icalendar and vobject per entry)
Every message must parse with email's strict-enough default policy and have
a Subject; every calendar must parse and every contact must have an FN.
"""
import email
import email.policy
import json
import mailbox
import os
import sys
import zipfile

import icalendar
import vobject


def check_message(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg["Subject"] is None or msg.defects:
        raise SystemExit("message without a subject or with defects: %r" % (msg.defects,))
    for part in msg.walk():
        part.get_content() if not part.is_multipart() else None
    return msg


def events_in(data, out):
    cal = icalendar.Calendar.from_ical(data)
    events = [c for c in cal.walk("VEVENT")]
    recurring = sum(1 for e in events if e.get("RRULE") is not None)
    exceptions = sum(1 for e in events if e.get("RECURRENCE-ID") is not None)
    for e in events:
        if e.get("DTSTART") is None or e.get("UID") is None:
            raise SystemExit("event without DTSTART or UID")
    for t in cal.walk("VTODO"):
        if t.get("UID") is None or t.get("SUMMARY") is None:
            raise SystemExit("task without UID or SUMMARY")
        out["tasks"] += 1
        if str(t.get("STATUS", "")) == "COMPLETED":
            out["completed_tasks"] += 1
    out["events"] += len(events); out["recurring"] += recurring; out["exceptions"] += exceptions


def cards_in(text, out):
    n = 0
    for card in vobject.readComponents(text):
        if not card.fn.value:
            raise SystemExit("contact without FN")
        if "n" not in card.contents:
            out["cards_without_n"] += 1
        out["card_versions"] = sorted(set(out["card_versions"]) | {card.version.value})
        n += 1
    out["contacts"] += n
    out["max_cards_per_file"] = max(out["max_cards_per_file"], n)


def walk(root, ext):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(ext):
                yield os.path.join(d, f)


def main():
    kind, path = sys.argv[1], sys.argv[2]
    out = {"messages": 0, "files": 0, "events": 0, "recurring": 0, "exceptions": 0, "contacts": 0, "folders": 0,
           "tasks": 0, "completed_tasks": 0,
           "card_versions": [], "cards_without_n": 0, "max_cards_per_file": 0}
    if kind == "mbox":
        for f in walk(path, ".mbox"):
            out["files"] += 1
            for m in mailbox.mbox(f, factory=None, create=False):
                check_message(m.as_bytes())
                out["messages"] += 1
    elif kind == "maildir":
        for d, dirs, _ in os.walk(path):
            if {"cur", "new", "tmp"} <= set(dirs):
                out["folders"] += 1
                md = mailbox.Maildir(d, factory=None, create=False)
                for key in md.keys():
                    check_message(md.get_bytes(key))
                    out["messages"] += 1
    elif kind == "ics":
        for f in walk(path, ".ics"):
            out["files"] += 1
            events_in(open(f, "rb").read(), out)
    elif kind == "vcf":
        for f in walk(path, ".vcf"):
            out["files"] += 1
            cards_in(open(f, encoding="utf-8").read(), out)
    elif kind == "zip":
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if name.startswith("/") or ".." in name.split("/"):
                    raise SystemExit("zip entry escapes: " + name)
                out["files"] += 1
                data = z.read(info)
                if name.endswith(".eml"):
                    check_message(data); out["messages"] += 1
                elif name.endswith(".ics"):
                    events_in(data, out)
                elif name.endswith(".vcf"):
                    cards_in(data.decode("utf-8"), out)
    else:
        raise SystemExit("unknown kind " + kind)
    print(json.dumps(out))


main()
