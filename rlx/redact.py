"""One redaction function for every sink: MLflow params, tags and artifacts, Ray metadata and entrypoints, stdout.

Three rules (reliability.md section 3):
- a key (config path segment, env var name, metadata key) whose words include token, key, secret, password, passwd,
  credential or auth has its value replaced, unless the name is one of verl's own non-secret keys (`prompt_key`,
  `ppo_max_token_len_per_gpu`, ...) listed in `VERL_NON_SECRET`; `max_tokens` or `tokenizer` never match, because
  matching is by whole word;
- any string is scanned for token shapes (`hf_...`, `sk-...`, `ghp_...`, `AKIA...`, JWTs, 40-hex W&B keys) and for URL
  userinfo (`https://user:pass@host` keeps the user and hides the password);
- `${oc.env:NAME}` references are kept as written: they name a variable, and the job resolves them on its own node.

`secret_values()` collects the literal secrets found in a config and in the environment, so free text (log lines,
command lines, diffs) can be scrubbed of them too, even where no rule would recognise their shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***REDACTED***"

_SECRET_WORDS = frozenset(
    {"token", "key", "secret", "password", "passwd", "credential", "credentials", "auth", "apikey", "passphrase"}
)
# Whole-segment names in verl 0.9.1's ppo_trainer config that contain a secret word but hold no secret.
# tests/unit/test_redact.py checks that this list covers every such name in verl's defaults.
VERL_NON_SECRET = frozenset(
    {
        "audio_key",
        "image_key",
        "video_key",
        "prompt_key",
        "response_key",
        "reward_fn_key",
        "teacher_key",
        "key",
        "forward_max_token_len_per_gpu",
        "log_prob_max_token_len_per_gpu",
        "ppo_max_token_len_per_gpu",
        "max_token_len",
        "max_token_len_per_gpu",
        "profile_token_start",
        "profile_token_end",
        "token2text",
        "use_cls_token",
        "tokenization_sanity_check_mode",
        "balance_dp_token",
    }
)

_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])("
    r"hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
    r"|[0-9a-f]{40}"  # W&B API key (also a git sha: callers pass trusted shas outside redaction)
    r")(?![A-Za-z0-9])"
)
# The lookbehinds anchor each match at the start of a word: without them a long run of letters (a 128 KiB value)
# is rescanned from every position, which took 23 s.
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)
# `name=value` / `name: value` / `"name": "value"` pairs in free text (command lines, YAML, logs).
# `==` is a version pin (`google-auth==2.40`), not an assignment.
_PAIR = re.compile(
    r"(?<![A-Za-z0-9_.\-/])(?P<key>[A-Za-z_+~][A-Za-z0-9_.\-/]*)(?P<sep>['\"]?\s*(?:=(?!=)|:)\s*['\"]?)"
    r"(?P<value>[^\s'\",}\]=][^\s'\",}\]]*)"
)
_ENV_REF = re.compile(r"^\$\{oc\.env:[^}]*\}$")
# A decimal or exponent float is a logged number (verl's `rollout_corr/chi2_token:-0.0148`), not a credential
_METRIC_VALUE = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\d+[eE][-+]?\d+")
# `KeyError: 'input_ids'` in a job's log is an exception and its message, not a secret named "key"
_EXCEPTION_NAME = re.compile(r"[A-Z][A-Za-z0-9]*(?:Error|Exception|Warning)")


def _words(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # camelCase -> camel_Case
    return [w.lower() for w in re.split(r"[^A-Za-z]+", name) if w]


def is_secret_key(key: str) -> bool:
    """Whether the value under `key` (a dotted/slashed path or an env var name) must be hidden."""
    last = re.split(r"[./]", str(key).lstrip("+~"))[-1]
    if last in VERL_NON_SECRET or _EXCEPTION_NAME.fullmatch(last):
        return False
    words = _words(last)
    if any(w in _SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    return any(s in joined for s in ("apikey", "privatekey", "accesskey", "secretkey", "authtoken"))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub free text: literal `secrets`, token shapes, URL passwords and `secret_key=value` pairs."""
    for s in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)

    def pair(m: re.Match) -> str:
        if (
            not is_secret_key(m["key"])
            or m["value"] == REDACTED
            or m["value"].startswith("${")
            or _METRIC_VALUE.fullmatch(m["value"])
        ):
            return m.group(0)
        return f"{m['key']}{m['sep']}{REDACTED}"

    return _PAIR.sub(pair, text)


def redact(obj: Any, *, key: str | None = None, secrets: Iterable[str] = ()) -> Any:
    """Redact a value for a sink: mappings and lists recursively, strings by `redact_text`, secret keys wholesale.

    The structure is kept (same keys, same list lengths); only values change. Non-string scalars under a secret key
    become `REDACTED` too, except `None` and empty strings, which hide nothing and say "not set".
    """
    secrets = tuple(secrets)
    if key is not None and is_secret_key(key) and obj not in (None, "") and not isinstance(obj, (Mapping, list, tuple)):
        if isinstance(obj, str) and _ENV_REF.match(obj):
            return obj
        return REDACTED
    if isinstance(obj, Mapping):
        return {k: redact(v, key=str(k), secrets=secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, key=key, secrets=secrets) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


def secret_values(config: Any = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The literal secret strings in `config` (under secret keys, or shaped like tokens) and in `env` (by name)."""
    found: list[str] = []

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and node:
            if key is not None and is_secret_key(key) and not _ENV_REF.match(node):
                found.append(node)
            found.extend(m.group(0) for m in _TOKEN_SHAPES.finditer(node))
            found.extend(m["pw"] for m in _URL_USERINFO.finditer(node))

    walk(config, None)
    for name, value in (env or {}).items():
        if value and is_secret_key(name) and not _describes_a_secret(name):
            found.append(value)
    return [s for s in dict.fromkeys(found) if len(s) >= 6]


# Env vars *about* a secret (RAY_AUTH_MODE=token, HF_TOKEN_PATH=/x): their values are not secrets, and scrubbing
# them from free text would mangle unrelated words ("disabled", a path) in logs and artifacts.
_ABOUT_SECRET = frozenset({"mode", "path", "file", "dir", "sock", "socket", "host", "port", "type", "enabled"})


def _describes_a_secret(name: str) -> bool:
    words = _words(name)
    return bool(words) and words[-1] in _ABOUT_SECRET


def secret_paths(flat: Mapping[str, Any]) -> list[str]:
    """Dotted config paths whose literal values are secrets (for the "not sent to the job" warning)."""
    return [
        k
        for k, v in flat.items()
        if isinstance(v, str) and v and not _ENV_REF.match(v) and (is_secret_key(k) or _TOKEN_SHAPES.search(v))
    ]
