"""A stock SMART-on-FHIR client (Python's fhirclient, unchanged) against MedLedger.

Run by bin/medledger/tests/smart.rs with the FHIR base URL, a redirect URI and a tag that makes
this run's records unique. It discovers the authorization server from the CapabilityStatement,
goes through the standalone-launch authorization code flow with PKCE (the test's authorization
server approves at once, so the browser step is one GET whose redirect is handed back to the
client), then creates, reads and searches Patients with the token it obtained. The
authorization server's certificate is trusted through REQUESTS_CA_BUNDLE. It prints one JSON
line: what it did, for the Rust test to check against the server's own view.
"""

import json
import sys

import requests
from fhirclient import client
from fhirclient.models.fhirsearch import FHIRSearch
from fhirclient.models.patient import Patient


def main() -> None:
    base, redirect, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    smart = client.FHIRClient(
        settings={
            "app_id": "stock-smart-app",
            "api_base": base,
            "redirect_uri": redirect,
            "scope": "launch/patient openid fhirUser user/*.cruds",
        }
    )
    # Discovery: fhirclient reads /metadata and its oauth-uris extension.
    authorize_url = smart.authorize_url
    if authorize_url is None:
        raise SystemExit("the CapabilityStatement named no authorization endpoint")
    # The user agent's part: the authorization server redirects back with a code.
    approval = requests.get(authorize_url, allow_redirects=False, timeout=30)
    if approval.status_code != 302:
        raise SystemExit(f"authorize answered {approval.status_code}: {approval.text}")
    smart.handle_callback(approval.headers["Location"])
    if not smart.ready:
        raise SystemExit("no access token after the callback")

    created = []
    for i in range(3):
        p = Patient(
            {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:smart-test", "value": f"{tag}-{i}"}],
                "name": [{"family": f"Stock{tag}", "given": [f"Client{i}"]}],
                "gender": "female" if i % 2 else "male",
                "birthDate": f"198{i}-02-0{i + 1}",
            }
        )
        response = p.create(smart.server)
        created.append(response["id"])

    read = Patient.read(created[0], smart.server)
    by_identifier = Patient.where({"identifier": f"urn:smart-test|{tag}-1"}).perform_resources(
        smart.server
    )
    # Page by page, following the server's next links (two per page).
    pages = list(FHIRSearch(Patient, {"family": f"Stock{tag}", "_count": "2"}).perform_iter(smart.server))
    by_name = [e.resource.id for page in pages for e in (page.entry or [])]

    print(
        json.dumps(
            {
                "created": created,
                "read": {"id": read.id, "family": read.name[0].family, "birthDate": read.birthDate.isostring},
                "by_identifier": [r.id for r in by_identifier],
                "by_name": by_name,
                "pages": len(pages),
                "token": smart.server.auth.access_token,
            }
        )
    )


if __name__ == "__main__":
    main()
