"""The SSL certificates page in a real browser: an internal certificate issued through the UI
with its order's live progress, then listed and shown in detail (names, fingerprint, chain); a
custom upload with a mismatched key refused on the key field (nothing stored), then a
matching pair listed as custom; a viewer sees it all with every write control disabled."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dashboard import check_page, open_page, write_controls_enabled
from playwright.sync_api import expect

INV = "/api/v1/infrastructure"
# The list pages through every domain of the shared project by name: start at this page's own.
LIST = "certificates?from=ssl-"
ISSUED = "ssl-a.localhost"
UPLOADED = "ssl-b.localhost"


def ensure_domain(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.post(f"{INV}/domains", json={"domain": name})
    assert r.status_code in (201, 409), r.text
    domain = api.get(f"{INV}/domains/{name}").json()
    # .localhost names are reserved: verified at once (and given an internal certificate).
    assert domain["status"] == "active", domain
    return dict(domain)


def status(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.get(f"{INV}/ssl/{name}")
    r.raise_for_status()
    return dict(r.json())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def self_signed(name: str, key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def issued_domain(admin_api: httpx.Client) -> str:
    ensure_domain(admin_api, ISSUED)
    return ISSUED


def test_issue_an_internal_certificate_and_see_its_details(
    admin_page: tuple[Any, Any], dash: Any, admin_api: httpx.Client, issued_domain: str
) -> None:
    page, watch = admin_page
    before = status(admin_api, issued_domain)
    open_page(page, dash.url, "certificates")
    check_page(page, watch, "certificates-list")
    page.get_by_label("Show domains from").fill("ssl-")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_url(re.compile(r"#/certificates\?from=ssl-$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=issued_domain))
    expect(row).to_contain_text("Internal CA")
    expect(row).to_contain_text(re.compile(r"\d+ days left"))
    expect(row).to_contain_text("on next")

    issue = page.locator("#cert-issue")
    issue.get_by_label("Domain").fill(issued_domain)
    expect(issue.get_by_label("Issuer")).to_have_value("internal")
    issue.get_by_role("button", name="Issue certificate").click()
    progress = issue.get_by_role("list", name="Order progress")
    expect(progress).to_contain_text("order accepted")
    expect(progress).to_contain_text("issuing from the internal CA", timeout=30_000)
    expect(issue.get_by_role("status").first).to_contain_text("valid", timeout=30_000)
    link = issue.get_by_role("link", name=re.compile(r"^cert-"))
    expect(link).to_be_visible()
    new_id = link.inner_text()

    after = status(admin_api, issued_domain)
    assert len(after["certificates"]) == len(before["certificates"]) + 1
    assert after["certificate"]["id"] == new_id and after["certificate"]["issuer"] == "internal"
    # The list shows the new version, with its expiry in days.
    expect(row.get_by_role("cell").last).to_have_text(str(len(after["certificates"])))
    expect(row).to_contain_text(re.compile(r"\d+ days left"))
    check_page(page, watch, "certificates-issued")

    row.get_by_role("link", name=issued_domain).click()
    expect(page.locator("#page-title")).to_have_text(f"Certificate of {issued_domain}")
    version = page.locator("#cert-version")
    expect(version).to_contain_text(new_id)
    expect(version.locator(".cert-names")).to_have_text(issued_domain)
    expect(version).to_contain_text(after["certificate"]["fingerprint"])
    chain = version.get_by_role("table", name="Certificates of the chain, leaf first")
    expect(chain.get_by_role("row")).to_have_count(3)  # the header, the leaf, the intermediate
    expect(chain).to_contain_text(f"CN={issued_domain}")
    expect(chain).to_contain_text("Edgeplane internal intermediate CA")
    versions = page.get_by_role("table", name="Every version kept, newest first")
    expect(versions.get_by_role("row")).to_have_count(len(after["certificates"]) + 1)
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "certificates-details")


def test_custom_upload_refused_on_the_key_field_then_accepted(
    admin_page: tuple[Any, Any], dash: Any, admin_api: httpx.Client
) -> None:
    page, watch = admin_page
    ensure_domain(admin_api, UPLOADED)
    mine, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    # Expiring in 20 days: under the shipped 30-day expiry rule, which notifies.
    cert = self_signed(UPLOADED, mine, days=20)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    before = status(admin_api, UPLOADED)

    open_page(page, dash.url, LIST)
    upload = page.locator("#cert-upload")
    upload.get_by_label("Domain").fill(UPLOADED)
    upload.get_by_label("Certificate chain (PEM, leaf first)").fill(cert_pem)
    key_field = upload.get_by_label("Private key (PEM)")
    key_field.fill(key_pem(other))
    watch.expect(422, "/upload")
    upload.get_by_role("button", name="Upload certificate").click()
    expect(key_field).to_have_attribute("aria-invalid", "true")
    error_id = key_field.get_attribute("aria-describedby")
    key_error = page.locator(f"#{error_id}")
    expect(key_error).to_contain_text("does not belong to the certificate")
    chain_field = upload.get_by_label("Certificate chain (PEM, leaf first)")
    expect(chain_field).not_to_have_attribute("aria-invalid", "true")
    check_page(page, watch, "certificates-upload-refused")
    # Nothing was stored.
    refused = status(admin_api, UPLOADED)
    assert refused["certificates"] == before["certificates"]
    assert all(c["issuer"] != "custom" for c in refused["certificates"])

    key_field.fill(key_pem(mine))
    upload.get_by_role("button", name="Upload certificate").click()
    expect(upload.get_by_role("status")).to_contain_text("the edge serves it now")
    expect(key_field).not_to_have_attribute("aria-invalid", "true")
    served = status(admin_api, UPLOADED)["certificate"]
    assert served["issuer"] == "custom"
    assert served["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=UPLOADED))
    expect(row).to_contain_text("Custom")
    expect(row).to_contain_text("manual (uploaded)")
    expect(row.locator(".badge.warn")).to_have_text(re.compile(r"^1\d days left$"))
    check_page(page, watch, "certificates-uploaded")

    # Its page: renewed by people, and the expiry notification (the rule engine runs every 5 s,
    # the card polls every 15 s).
    row.get_by_role("link", name=UPLOADED).click()
    expect(page.locator("#cert-renewal")).to_contain_text("manual: upload the successor")
    expect(page.get_by_role("button", name="Renew now")).to_be_disabled()
    alerts = page.locator("#cert-alerts")
    expect(alerts).to_contain_text("Certificate expires within 30 days", timeout=45_000)
    expect(alerts.get_by_role("row").filter(has_text="within 30 days")).to_contain_text(UPLOADED)
    page.wait_for_load_state("networkidle")
    check_page(page, watch, "certificates-uploaded-details")


def test_a_viewer_sees_everything_and_can_change_nothing(
    viewer_page: tuple[Any, Any], dash: Any, issued_domain: str
) -> None:
    page, watch = viewer_page
    open_page(page, dash.url, LIST)
    expect(page.get_by_role("link", name=issued_domain)).to_be_visible()
    expect(page.locator("#cert-issue")).to_be_visible()
    assert write_controls_enabled(page) == []
    check_page(page, watch, "certificates-viewer-list")

    page.get_by_role("link", name=issued_domain).click()
    expect(page.locator("#page-title")).to_have_text(f"Certificate of {issued_domain}")
    expect(page.get_by_role("table", name="Certificates of the chain, leaf first")).to_be_visible()
    expect(page.get_by_role("button", name="Renew now")).to_be_disabled()
    page.wait_for_load_state("networkidle")
    assert write_controls_enabled(page) == []
    check_page(page, watch, "certificates-viewer-details")
