"""Gets a client-credentials token from the Graph simulator with Microsoft's
MSAL for Python (Debian's python3-msal), as a third-party client would, and
lists the users with it. Prints one JSON line; never the secret or token.

usage: msal_token.py AUTHORITY CLIENT_ID SECRET_FILE CA_CERT GRAPH_URL
"""
import json
import sys

import msal
import requests

authority, client_id, secret_file, ca_cert, graph_url = sys.argv[1:6]
with open(secret_file) as f:
    secret = f.read().strip()
# A private authority host: MSAL is told not to ask login.microsoftonline.com
# about it, and reads the authority's own OpenID configuration instead.
app = msal.ConfidentialClientApplication(
    client_id, authority=authority, client_credential=secret,
    verify=ca_cert, instance_discovery=False)
result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
if "access_token" not in result:
    print(json.dumps({"error": result.get("error"), "description": result.get("error_description")}))
    sys.exit(1)
reply = requests.get(graph_url + "/users", verify=ca_cert,
                     headers={"Authorization": "Bearer " + result["access_token"]})
users = reply.json().get("value", []) if reply.ok else []
print(json.dumps({"status": reply.status_code, "users": len(users), "token_type": result.get("token_type")}))
