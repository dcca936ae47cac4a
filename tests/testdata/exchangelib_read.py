"""Reads a mailbox of the EWS simulator with exchangelib (Debian's
python3-exchangelib), a widely used third-party EWS client, over NTLM as
DOMAIN\\user with impersonation. Prints one JSON line of what it saw; never
the password.

usage: exchangelib_read.py EWS_URL DOMAIN_USER PASSWORD_FILE MAILBOX
"""
import json
import sys

from exchangelib import IMPERSONATION, NTLM, Account, Configuration, Credentials

url, user, password_file, mailbox = sys.argv[1:5]
with open(password_file) as f:
    password = f.read().strip()
config = Configuration(service_endpoint=url, credentials=Credentials(user, password), auth_type=NTLM)
account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION)

folders = sorted(f.name for f in account.root.walk())
inbox = list(account.inbox.all().order_by("-datetime_received"))
newest = [{"subject": m.subject, "from": m.sender.email_address, "received": m.datetime_received.isoformat(), "size": m.size}
          for m in inbox[:3]]
events = [{"subject": e.subject, "start": e.start.isoformat(), "end": e.end.isoformat()} for e in account.calendar.all()]
contacts = [{"name": c.display_name, "emails": [a.email for a in (c.email_addresses or [])]} for c in account.contacts.all()]
mime = [len(m.mime_content) for m in account.inbox.all().only("mime_content")[:2]]
print(json.dumps({"version": str(account.version.api_version), "folders": folders, "inbox_total": account.inbox.total_count,
                  "inbox": len(inbox), "newest": newest, "events": events, "contacts": contacts, "mime": mime}))
