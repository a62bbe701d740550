"""Secrets in previews: keys and tokens found in file text, replaced by a visible marker.

Used by every view of a file's content (previews, diffs, the API's snippets) and to flag a snapshot whose
files look like they hold secrets, so a push asks for confirmation first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.services.snapshots.blobs import looks_binary

REDACTED = "[redacted {kind}]"
PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END (?P=label)-----|\Z)", re.DOTALL
)
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "AWS secret key",
        re.compile(r"(?i)(?<=aws_secret_access_key)(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<secret>[A-Za-z0-9/+=]{40})"),
    ),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,255}\b|\bwhsec_[A-Za-z0-9]{20,255}\b")),
    ("OpenAI key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,255}\b")),
)
ENV_LINE_RE = re.compile(
    r"^(?P<head>[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_.-]*[ \t]*=[ \t]*)(?P<value>[^\n]*[^\s])[ \t]*$", re.M
)
# Example and template env files hold placeholders by convention; their values are not redacted
# (a real-looking key in them is still caught by SECRET_PATTERNS).
ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults")


@dataclass(frozen=True)
class Redaction:
    """Text with its secrets replaced, and what was replaced (kinds are e.g. "Stripe key")."""

    text: str
    count: int
    kinds: tuple[str, ...]


def is_env_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    if not (name == ".env" or name.startswith(".env.") or name.endswith(".env")):
        return False
    return not name.endswith(ENV_TEMPLATE_SUFFIXES)


def redact_secrets(path: str, text: str) -> Redaction:
    """`text` with keys and tokens replaced by a visible marker: AWS, GitHub, Stripe and OpenAI keys,
    PEM private keys, and every value of a `.env` file. Linear in the text; never raises."""
    count = 0
    kinds: list[str] = []

    def note(kind: str) -> str:
        nonlocal count
        count += 1
        if kind not in kinds:
            kinds.append(kind)
        return REDACTED.format(kind=kind)

    text = PRIVATE_KEY_RE.sub(lambda m: note("private key"), text)
    for kind, pattern in SECRET_PATTERNS:
        if "secret" in pattern.groupindex:
            text = pattern.sub(lambda m, kind=kind: m.group("sep") + note(kind), text)
        else:
            text = pattern.sub(lambda m, kind=kind: note(kind), text)
    if is_env_file(path):

        def env_value(match: re.Match[str]) -> str:
            value = match.group("value")
            if value.startswith("[redacted ") or value in ('""', "''"):
                return match.group(0)
            return match.group("head") + note(".env value")

        text = ENV_LINE_RE.sub(env_value, text)
    return Redaction(text=text, count=count, kinds=tuple(kinds))


def contains_secret(path: str, content: bytes) -> bool:
    """True when the preview of this file would redact something (binary files are not scanned)."""
    if looks_binary(content):
        return False
    return redact_secrets(path, content.decode("utf-8", errors="replace")).count > 0

