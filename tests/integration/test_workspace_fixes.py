"""Small fixes found trying Sorya as a new user."""

from __future__ import annotations

import re


def test_the_account_pages_json_api_link_goes_to_the_api_description(signed_in_client):
    page = signed_in_client.get("/account").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)">JSON API</a>', page).group(1)
    assert link == "/api/openapi.json"
    described = signed_in_client.get(link)
    assert described.status_code == 200 and "/api/chat/estimate" in described.json["paths"]
