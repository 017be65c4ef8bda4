"""TEMPORARY stand-in of the functions runtime's ``check_code`` (branch issue-20 brings the
real one, which compiles the code in an isolate with ``node check.mjs``). This one only finds
unbalanced brackets and a missing ``export default``, enough for the control plane's tests;
it is replaced at merge."""

from __future__ import annotations

from dataclasses import dataclass

_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    line: int | None = None
    column: int | None = None
    message: str = ""


def check_code(code: str) -> CheckResult:
    stack: list[tuple[str, int, int]] = []
    line, column = 1, 0
    quote: str | None = None
    escaped = False
    for ch in code:
        column += 1
        if ch == "\n":
            line, column = line + 1, 0
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in "([{":
            stack.append((ch, line, column))
        elif ch in _PAIRS:
            if not stack or stack[-1][0] != _PAIRS[ch]:
                return CheckResult(False, line, column, f"SyntaxError: Unexpected token '{ch}'")
            stack.pop()
    if stack:
        return CheckResult(False, line, column, "SyntaxError: Unexpected end of input")
    if "export default" not in code:
        return CheckResult(
            False, None, None, "the module must export default an object with a fetch method"
        )
    return CheckResult(True)
