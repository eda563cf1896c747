"""Read a verl launch script (bash) without executing it: the trainer invocation and its Hydra overrides.

verl's examples launch runs as

    set -x
    gsm8k=$HOME/data/gsm8k
    BS=${BS:-1024}
    python3 -m verl.trainer.main_ppo \\
        algorithm.adv_estimator=grpo \\
        data.train_files=$gsm8k/train.parquet \\
        data.train_batch_size=$BS \\
        trainer.logger='["console","wandb"]' $@

`read_script` finds the `main_ppo` (or `rlx.verl_entry`) command across line continuations, expands the variables
the script assigns and the `${VAR:-default}` forms the way bash would, and keeps, for every argument, the line it
starts on, so findings can point at `run.sh:LINE`. It never runs the script and never reads the environment: a
variable the script does not set is *unresolved*, named with its lines, and left in the text as written.

This is a reader for the scripts people write to launch verl, not a bash interpreter: control flow (`if`, loops,
functions) is not followed, and the last assignment before the command wins.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rlx.errors import ConfigError

ENTRY_MODULES = ("verl.trainer.main_ppo", "rlx.verl_entry")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Private marks inside a word while it is read: an unquoted expansion's bounds (split at whitespace later), and
# the elements of an array expansion, each with its line.
_SPLIT, _ELEMENT, _AT = "\x1e", "\x1f", "\x1d"
_REDIRECT = re.compile(r"\d*>>?(?:&\d*)?|&>>?|\|\||\||&&|&|<")


@dataclass(frozen=True)
class Arg:
    """One argument of the trainer command, after expansion, with the script line it starts on."""

    text: str
    line: int


@dataclass
class Script:
    """What a verl launch script asks the trainer to run."""

    path: Path
    entry: str  # the module it runs: verl.trainer.main_ppo or rlx.verl_entry
    line: int  # where the command starts
    overrides: list[Arg] = field(default_factory=list)
    config_path: str | None = None
    config_name: str | None = None
    unresolved: dict[str, list[int]] = field(default_factory=dict)  # variable -> lines it is used on, unset
    dropped: list[Arg] = field(default_factory=list)  # `$@` and other arguments that are not overrides
    base: str = "ppo_trainer"  # the packaged verl config the composed one builds on (set when validating)

    def where(self, line: int) -> str:
        return f"{self.path.name}:{line}"

    def line_of(self, text: str) -> int | None:
        for a in self.overrides:
            if a.text == text:
                return a.line
        return None


# ---- lexing -----------------------------------------------------------------------------------------------------


@dataclass
class _Word:
    text: str
    line: int
    quoted: bool = False  # any part quoted (an operator in quotes is text)
    array: list[_Word] | None = None  # `NAME=(a b c)`: the elements


class _Lexer:
    """Splits bash source into commands of words, expanding parameters with the variables known so far."""

    def __init__(
        self,
        source: str,
        variables: dict[str, str],
        unresolved: dict[str, list[int]],
        arrays: dict[str, list[_Word]] | None = None,
    ):
        self.s = source
        self.i = 0
        self.line = 1
        self.vars = variables
        self.unresolved = unresolved
        self.arrays = arrays if arrays is not None else {}
        self._closing = ""  # ")" while reading an array's elements

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def _advance(self, n: int = 1) -> str:
        out = self.s[self.i : self.i + n]
        self.line += out.count("\n")
        self.i += n
        return out

    def commands(self):
        """Yield each simple command as a list of words (comments, blank lines and heredoc bodies skipped)."""
        words: list[_Word] = []
        while self.i < len(self.s):
            c = self._peek()
            if c == "\\" and self._peek(1) == "\n":  # line continuation
                self._advance(2)
            elif c in " \t\r":
                self._advance()
            elif c == "\n" or c == ";":
                self._advance()
                if words:
                    yield words
                    words = []
            elif c == "#":
                while self.i < len(self.s) and self._peek() != "\n":
                    self._advance()
            elif m := _REDIRECT.match(self.s, self.i):  # |, ||, &&, &, >, 2>&1, &>, <
                words.append(_Word(self._advance(len(m.group(0))), self.line))
            else:
                words.extend(self._fields())
        if words:
            yield words

    def _fields(self) -> list[_Word]:
        """One word of source as the fields bash passes on: an unquoted expansion is split at whitespace (and
        vanishes when empty); `"${ARR[@]}"` gives one field per element, each with the line it was written on."""
        w = self._word()
        if w.array is not None or (_SPLIT not in w.text and _ELEMENT not in w.text):
            return [w]
        out = []
        no_split = w.quoted or _ASSIGN.fullmatch(w.text.replace(_SPLIT, "")) is not None  # assignments never split
        for piece in w.text.split(_ELEMENT):
            if not piece:
                continue
            line, _, text = piece.partition(_AT) if _AT in piece else (str(w.line), "", piece)
            if _SPLIT not in text or no_split or "$(" in text:  # what an unrun `$(...)` gives is unknown: one field
                out.append(_Word(text.replace(_SPLIT, ""), int(line), w.quoted))
            else:  # an unquoted expansion: whitespace in what it expanded to separates fields; empty ones vanish
                out.extend(_Word(f, int(line)) for f in text.replace(_SPLIT, "").split() if f)
        return out

    def _array(self, start: int) -> list[_Word]:
        """The elements of `NAME=( ... )`, across lines, comments skipped."""
        self._advance()  # (
        elements: list[_Word] = []
        outer, self._closing = self._closing, ")"
        try:
            while self.i < len(self.s):
                c = self._peek()
                if c == ")":
                    self._advance()
                    break
                if c == "\\" and self._peek(1) == "\n":
                    self._advance(2)
                elif c in " \t\r\n":
                    self._advance()
                elif c == "#":
                    while self.i < len(self.s) and self._peek() != "\n":
                        self._advance()
                else:
                    elements.extend(self._fields())
        finally:
            self._closing = outer
        return elements

    def _word(self) -> _Word:
        start = self.line
        out: list[str] = []
        quoted = False
        while self.i < len(self.s):
            c = self._peek()
            if c in " \t\r\n;|&<>" or (self._closing and c == self._closing):
                break
            if c == "(" and not quoted and re.fullmatch(r"[A-Za-z_]\w*=", "".join(out)):
                elements = self._array(start)
                return _Word("".join(out) + "(...)", start, False, elements)
            if c == "\\":
                if self._peek(1) == "\n":
                    self._advance(2)
                    break
                self._advance()
                out.append(self._advance())
            elif c == "'":
                quoted = True
                self._advance()
                j = self.s.find("'", self.i)
                j = len(self.s) if j < 0 else j
                out.append(self._advance(j - self.i))
                self._advance()
            elif c == '"':
                quoted = True
                self._advance()
                while self.i < len(self.s) and self._peek() != '"':
                    d = self._peek()
                    if d == "\\" and self._peek(1) in '"\\$`\n':
                        self._advance()
                        ch = self._advance()
                        if ch != "\n":
                            out.append(ch)
                    elif d == "$":
                        out.append(self._dollar(start))
                    else:
                        out.append(self._advance())
                self._advance()
            elif c == "$":
                text = self._dollar(start)
                out.append(text if _ELEMENT in text or text.startswith("$") else _SPLIT + text + _SPLIT)
            elif c == "`":
                j = self.s.find("`", self.i + 1)
                j = len(self.s) if j < 0 else j
                text = self._advance(j + 1 - self.i)
                self._unset("`...`", start)
                out.append(text)
            else:
                out.append(self._advance())
        return _Word("".join(out), start, quoted)

    def _unset(self, name: str, line: int) -> None:
        lines = self.unresolved.setdefault(name, [])
        if line not in lines:
            lines.append(line)

    def _dollar(self, line: int) -> str:
        """Expand `$NAME`, `${NAME}`, `${NAME:-default}` (and `-`, `:=`, `=`); `$(...)` is left as written."""
        nxt = self._peek(1)
        if self.s.startswith("$((", self.i):
            j = self.s.find("))", self.i)
            if j > 0:
                raw = self._advance(j + 2 - self.i)
                value = _arithmetic(raw[3:-2], self.vars)
                if value is None:
                    self._unset(raw, line)
                    return raw
                return value
        if nxt in "({":
            close = {"(": ")", "{": "}"}[nxt]
            depth, j = 0, self.i + 1
            while j < len(self.s):
                depth += {nxt: 1, close: -1}.get(self.s[j], 0)
                if depth == 0:
                    break
                j += 1
            raw = self._advance(j + 1 - self.i)
            if nxt == "(":  # command substitution: never run
                self._unset(raw, line)
                return raw
            body = raw[2:-1]
            if body.startswith(("@", "*")):  # ${@:2}: the script's own arguments
                return "$@"
            arr = re.fullmatch(r"([A-Za-z_]\w*)\[[@*]\]", body)
            if arr and arr.group(1) in self.arrays:
                return _ELEMENT.join(f"{w.line}{_AT}{w.text}" for w in self.arrays[arr.group(1)]) + _ELEMENT
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=])(.*))?", body, re.S)
            if not m:  # ${#x}, ${x[0]}, ${x/a/b}: not followed
                self._unset(raw, line)
                return raw
            name, op, default = m.group(1), m.group(2), m.group(3)
            value = self.vars.get(name)
            if op and (value is None or (op.startswith(":") and value == "")):
                value = expand(default or "", self.vars, self.unresolved, line)
                if op.endswith("="):
                    self.vars[name] = value
            if value is None:
                self._unset(name, line)
                return "$" + name  # as `$NAME`: `${NAME}` would read as an OmegaConf interpolation
            return value
        m = _NAME.match(self.s, self.i + 1)
        if m:
            self._advance(1 + len(m.group(0)))
            name = m.group(0)
            if name in self.vars:
                return self.vars[name]
            self._unset(name, line)
            return "$" + name
        if nxt in "@*#?" or nxt.isdigit():
            self._advance(2)
            return "$" + nxt
        return self._advance()


def _arithmetic(expr: str, variables: dict[str, str]) -> str | None:
    """Bash integer arithmetic (`$((1024 * 2))`, `$((max_prompt + max_resp))`); None when it cannot be evaluated."""
    import ast

    def name(m: re.Match) -> str:
        value = variables.get(m.group(1) or m.group(2) or m.group(3), "")
        return f"({value})" if re.fullmatch(r"\s*-?\d+\s*", value) else "@"

    text = re.sub(r"\$\{(\w+)\}|\$(\w+)|\b([A-Za-z_]\w*)\b", name, expr)
    if "@" in text:
        return None
    ops = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: int(a / b),
        ast.FloorDiv: lambda a, b: int(a / b),
        ast.Mod: lambda a, b: a % b,
    }

    def ev(node) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(node)

    try:
        return str(ev(ast.parse(text.replace("/", "//") if "//" not in text else text, mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def expand(text: str, variables: dict[str, str], unresolved: dict[str, list[int]], line: int = 1) -> str:
    """Expand one piece of bash text (a `${X:-default}` default): quotes removed, variables substituted."""
    lexer = _Lexer(text, variables, unresolved)
    lexer.line = line
    parts = []
    while lexer.i < len(text):
        if lexer._peek() in " \t":
            parts.append(lexer._advance())
        else:
            parts.append(lexer._word().text)
            if lexer.i < len(text) and lexer._peek() not in " \t":
                parts.append(lexer._advance())
    return "".join(parts)


# ---- reading ----------------------------------------------------------------------------------------------------


def read_script(path: str | os.PathLike[str]) -> Script:
    """Read the trainer invocation of a verl launch script. Raises ConfigError (exit 1) when there is none."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})",
            hint="save the script as UTF-8",
            code="RLX007",
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", hint="check the path", code="RLX007") from None
    return parse_script(source, path)


def parse_script(source: str, path: str | Path = "run.sh") -> Script:
    path = Path(path)
    variables: dict[str, str] = {}
    unresolved: dict[str, list[int]] = {}
    arrays: dict[str, list[_Word]] = {}
    lexer = _Lexer(source, variables, unresolved, arrays)
    for words in lexer.commands():
        assigns = words[1:] if words[0].text in ("export", "local", "readonly", "declare") else words
        if words[0].text in ("export", "local", "readonly", "declare") or all(
            _ASSIGN.fullmatch(w.text) for w in words
        ):  # `A=1`, `A=1 B=2`, `export A=1`, `ARR=(a b)`
            for w in assigns:
                if w.array is not None:
                    arrays[w.text.split("=", 1)[0]] = w.array
                elif _ASSIGN.fullmatch(w.text):
                    _assign(w.text, variables)
            continue
        start = _entry_index(words)
        if start is None:
            continue
        entry_word = words[start]
        entry = next((m for m in ENTRY_MODULES if m in entry_word.text.replace("/", ".")), ENTRY_MODULES[0])
        script = Script(path=path, entry=entry, line=words[0].line)
        _arguments(words[start + 1 :], script)
        for name in unresolved:  # only what reaches the trainer's arguments, on the lines it reaches them
            marks = (name,) if not _NAME.fullmatch(name) else ("$" + name, "${" + name)
            lines = sorted({a.line for a in script.overrides if any(m in a.text for m in marks)})
            if lines:
                script.unresolved[name] = lines
        return script
    raise ConfigError(
        f"{path.name}: no `python -m verl.trainer.main_ppo` (or `rlx.verl_entry`) command found",
        hint="pass the script that launches verl's trainer; for overrides on the command line use "
        "`rlx validate config --verl KEY=VALUE ...`",
        code="RLX010",
    )


def _assign(text: str, variables: dict[str, str]) -> None:
    name, value = text.split("=", 1)
    if value.startswith("(") and value.endswith(")"):  # a bash array: not followed
        return
    variables[name] = value


def _entry_index(words: list[_Word]) -> int | None:
    for i, w in enumerate(words):
        t = w.text.replace("/", ".")
        if any(
            t == m or t.endswith("." + m) or t in (m + ".py",) or t.endswith("." + m + ".py") for m in ENTRY_MODULES
        ):
            return i
    return None


def _arguments(words: list[_Word], script: Script) -> None:
    it = iter(enumerate(words))
    for i, w in it:
        t = w.text
        if not w.quoted and _REDIRECT.fullmatch(t):
            break  # `| tee log`, `2>&1`, `&& ...`: the rest is not the trainer's
        if t in ("--config-path", "--config-name", "--config-dir", "-cp", "-cn"):
            value = words[i + 1].text if i + 1 < len(words) else ""
            next(it, None)
            _config_flag(t, value, script)
        elif t.startswith(("--config-path=", "--config-name=", "--config-dir=")):
            flag, value = t.split("=", 1)
            _config_flag(flag, value, script)
        elif t in ("$@", "$*"):
            script.dropped.append(Arg(t, w.line))
        elif t.startswith("-"):
            script.dropped.append(Arg(t, w.line))
        else:
            script.overrides.append(Arg(t, w.line))


def _config_flag(flag: str, value: str, script: Script) -> None:
    if flag in ("--config-path", "-cp"):
        script.config_path = value
    elif flag in ("--config-name", "-cn"):
        script.config_name = value.removesuffix(".yaml")
    else:
        script.dropped.append(Arg(f"{flag}={value}", script.line))
