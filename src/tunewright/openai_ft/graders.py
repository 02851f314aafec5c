"""`train.rewards` as the grader of OpenAI's reinforcement fine-tuning: the one translation from
our graders to OpenAI's.

| ours | OpenAI's |
|---|---|
| exact_match | string_check, operation eq, sample.output_text against item.reference |
| similarity | text_similarity, evaluation_metric fuzzy_match (character-level, as chrF is) |
| regex, json_parses, length_penalty | a python grader we generate that runs the same check |
| python: module:function | a python grader with the function's own source and a `grade` entry |
| json_schema | none: validating needs the jsonschema package, and our python graders send the |
|  | standard library only |

Several graders become a `multi` grader whose `calculate_output` is the weighted sum, as locally.
The data rows carry the prompt as `messages` and its reference answer as `reference`
(`convert.rft_row`), which is what `{{item.reference}}` and the python graders read.

OpenAI's python grader runs only the source it is sent, so a `python:` function must be
self-contained: it may use its arguments, builtins, and (sent along with it) standard-library
imports and literal constants at the top of its module; anything else it uses (a helper
function, a third-party import, a computed value) is named in the refusal.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import symtable
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.errors import ConfigError

OUTPUT = "{{sample.output_text}}"
REFERENCE = "{{item.reference}}"
# OpenAI's text_similarity has no chrF; fuzzy_match (rapidfuzz's ratio) is its one character-level
# metric, the others (bleu, gleu, meteor, rouge_*, cosine) compare words or embeddings.
SIMILARITY_METRIC = "fuzzy_match"
# Kinds whose OpenAI grader reads {{item.reference}}: every row needs a reference answer.
NEEDS_REFERENCE = ("exact_match", "similarity")
# Functions calculate_output knows; a grader of that name would read as a call.
FORMULA_FUNCTIONS = frozenset({"min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log"})
MULTI_NAME = "train.rewards"

REGEX_SOURCE = """import re

PATTERN = re.compile({pattern!r})


def grade(sample, item):
    # tunewright's regex grader: 1 when the pattern matches anywhere in the answer (re.search)
    return 1.0 if PATTERN.search(sample["output_text"]) else 0.0
"""
JSON_PARSES_SOURCE = """import json


def grade(sample, item):
    # tunewright's json_parses grader: 1 when the whole answer is one JSON value
    try:
        json.loads(sample["output_text"])
    except ValueError:
        return 0.0
    return 1.0
"""
LENGTH_PENALTY_SOURCE = """MAX_WORDS = {max_words}


def grade(sample, item):
    # tunewright's length_penalty grader: 0 up to MAX_WORDS words, then falling linearly to -1
    # at twice as many
    excess = len(sample["output_text"].split()) - MAX_WORDS
    return -min(1.0, excess / MAX_WORDS) if excess > 0 else 0.0
"""
# Calls the user's function as local training does: (the answer's text, the reference answer or
# None, the prompt's messages); the rows carry the system prompt as OpenAI's developer role.
PYTHON_ENTRY = """


_tunewright_function = {function}


def grade(sample, item):
    prompt = [
        {{**m, "role": "system"}} if m.get("role") == "developer" else m
        for m in item.get("messages") or []
    ]
    return float(_tunewright_function(sample["output_text"], item.get("reference"), prompt))
"""


def openai_grader(config: Config) -> dict[str, Any]:
    """The `grader` of OpenAI's reinforcement method for `train.rewards`; raises ConfigError
    naming every entry that has no OpenAI equivalent."""
    named, problems = [], []
    for i, (name, entry) in enumerate(zip(_names(config), config.train.rewards, strict=True)):
        try:
            named.append((name, entry.weight, _grader(config, entry, name)))
        except ValueError as exc:
            problems.append(f"train.rewards[{i}]: {exc}")
    if problems:
        raise ConfigError(
            "train.rewards",
            problems,
            hint="Drop those graders or train here with train.backend: local.",
        )
    if len(named) == 1 and named[0][1] == 1:
        return named[0][2]
    return {
        "type": "multi",
        "name": MULTI_NAME,
        "graders": {name: grader for name, _, grader in named},
        "calculate_output": weighted_sum([(name, weight) for name, weight, _ in named]),
    }


def grader_problems(config: Config) -> list[str]:
    """What `openai_grader` would refuse, each named by its key (for `tunewright validate`)."""
    try:
        openai_grader(config)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def needs_reference(config: Config) -> bool:
    return any(entry.type in NEEDS_REFERENCE for entry in config.train.rewards)


def weighted_sum(terms: list[tuple[str, float]]) -> str:
    """`calculate_output` for weighted graders, e.g. `exact_match + 0.5 * regex - length`.

    Weights are written in positional notation (no exponent) and a leading negative term as
    `0 - ...`, so that nothing depends on how OpenAI's formula parser reads those."""
    parts: list[str] = []
    for name, weight in terms:
        size = Decimal(repr(abs(float(weight))))
        parts += ["-" if weight < 0 else "+", name if size == 1 else f"{size:f} * {name}"]
    return " ".join(parts[1:] if parts[0] == "+" else ["0", *parts])


# ---------------------------------------------------------------------------------------------
# One grader


def _names(config: Config) -> list[str]:
    """Each grader's name in the multi grader: its kind or its python function, `_2` for a
    second of one name (as the local metrics are named), never a formula function's name."""
    names: list[str] = []
    for entry in config.train.rewards:
        base = entry.python.rpartition(":")[2] if entry.type == "python" else entry.type
        if base in FORMULA_FUNCTIONS:
            base = f"{base}_grader"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.append(name)
    return names


def _grader(config: Config, entry: Any, name: str) -> dict[str, Any]:
    """OpenAI's grader for one entry; ValueError says why there is none."""
    if entry.type == "exact_match":
        return {
            "type": "string_check",
            "name": name,
            "input": OUTPUT,
            "reference": REFERENCE,
            "operation": "eq",
        }
    if entry.type == "similarity":
        return {
            "type": "text_similarity",
            "name": name,
            "input": OUTPUT,
            "reference": REFERENCE,
            "evaluation_metric": SIMILARITY_METRIC,
        }
    if entry.type == "regex":
        return _python(name, REGEX_SOURCE.format(pattern=entry.pattern))
    if entry.type == "json_parses":
        return _python(name, JSON_PARSES_SOURCE)
    if entry.type == "length_penalty":
        return _python(name, LENGTH_PENALTY_SOURCE.format(max_words=entry.max_words))
    if entry.type == "python":
        return _python(name, python_source(config, entry.python))
    raise ValueError(
        f"{entry.type} has no OpenAI grader: validating a JSON Schema needs the jsonschema "
        "package, and tunewright's python graders for OpenAI use the standard library only"
    )


def _python(name: str, source: str) -> dict[str, Any]:
    return {"type": "python", "name": name, "source": source}


# ---------------------------------------------------------------------------------------------
# A `python: module:function` grader's source


def python_source(config: Config, target: str) -> str:
    """The source of OpenAI's python grader for `module:function`: the function with the
    standard-library imports and literal constants it uses, and a `grade(sample, item)` that
    calls it. ValueError when the function is not self-contained."""
    module_name, _, function_name = target.partition(":")
    path = _module_file(config, module_name)
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"python: {path} does not parse: {exc.msg} (line {exc.lineno})") from None
    function = _top_level_function(tree, function_name)
    if function is None:
        raise ValueError(f"python: {path.name} defines no top-level function {function_name}")
    if function.decorator_list:
        raise ValueError(
            f"python: {target} is decorated; OpenAI's python grader gets its source without "
            "what the decorator does"
        )
    bindings = _module_bindings(tree)
    sent: dict[int, str] = {}  # line in the module -> the line sent, kept in the module's order
    reasons = []
    for name in sorted(_global_names(source, path, function_name)):
        try:
            line, text = _portable(source, bindings.get(name, []), name, path.name)
        except ValueError as exc:
            reasons.append(str(exc))
            continue
        sent[line] = f"{sent[line]}\n{text}" if line in sent else text
    if reasons:
        raise ValueError(
            f"python: {target} is not self-contained, and OpenAI's python grader runs only "
            f"the source it is sent: it uses {'; '.join(reasons)}. Keep what it needs inside "
            "the function (standard-library imports and literal constants at the top of the "
            "module are sent along)"
        )
    preamble = "\n".join(sent[line] for line in sorted(sent))
    body = ast.get_source_segment(source, function) or ""
    return (
        "from __future__ import annotations\n\n"
        + (f"{preamble}\n\n\n" if preamble else "")
        + body
        + PYTHON_ENTRY.format(function=function_name)
    )


def _module_file(config: Config, module_name: str) -> Path:
    """The .py file of `module`, looked up as local training imports it (config folder first),
    without running it."""
    folder = str(config.base_dir.resolve())
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"python: cannot find {module_name}: {exc}") from None
    finally:
        if added:
            sys.path.remove(folder)
    if spec is None:
        raise ValueError(f"python: no module {module_name} in {folder} or the installed packages")
    if not (spec.origin and spec.origin.endswith(".py")):
        raise ValueError(f"python: {module_name} has no Python source file to send")
    return Path(spec.origin)


def _top_level_function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The module's last top-level `def name` (the one an import leaves bound)."""
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return found[-1] if found else None


def _global_names(source: str, path: Path, function_name: str) -> set[str]:
    """Module-level names the function (and anything nested in it) reads or writes, builtins
    that the module does not shadow left out."""
    module = symtable.symtable(source, str(path), "exec")
    tables = [t for t in module.get_children() if t.get_name() == function_name]
    names = _globals_in(tables[-1])
    shadowed = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported()}
    return {n for n in names if n in shadowed or not hasattr(builtins, n)}


def _globals_in(table: symtable.SymbolTable) -> set[str]:
    names = {s.get_name() for s in table.get_symbols() if s.is_global()}
    for child in table.get_children():
        names |= _globals_in(child)
    return names


def _module_bindings(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    """name -> the top-level statements that bind it."""
    bindings: dict[str, list[ast.stmt]] = {}
    for statement in tree.body:
        for name in _bound_by(statement):
            bindings.setdefault(name, []).append(statement)
    return bindings


def _bound_by(statement: ast.stmt) -> set[str]:
    if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
        return set()
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in statement.names}
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    names = set()
    for node in ast.walk(statement):  # assignments, and whatever an if/try/for/with binds
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _portable(source: str, statements: list[ast.stmt], name: str, file: str) -> tuple[int, str]:
    """(line in the module, text) of what gives the grader `name`: a standard-library import or
    a literal constant. ValueError says what else it is."""
    if not statements:
        raise ValueError(f"{name} (not defined at the top of {file})")
    if len(statements) > 1:
        raise ValueError(f"{name} (bound {len(statements)} times in {file})")
    statement = statements[0]
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return statement.lineno, _import_line(statement, name)
    if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
        try:
            ast.literal_eval(statement.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{name} (computed in {file}, not a literal constant)") from None
        return statement.lineno, ast.get_source_segment(source, statement) or ""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError(f"{name} (a function defined elsewhere in {file})")
    if isinstance(statement, ast.ClassDef):
        raise ValueError(f"{name} (a class defined in {file})")
    raise ValueError(f"{name} (bound by a {type(statement).__name__.lower()} statement in {file})")


def _import_line(statement: ast.Import | ast.ImportFrom, name: str) -> str:
    alias = next(a for a in statement.names if (a.asname or a.name.split(".")[0]) == name)
    if isinstance(statement, ast.ImportFrom):
        if statement.level:
            raise ValueError(f"{name} (a relative import)")
        module = statement.module or ""
        line = ast.unparse(ast.ImportFrom(module=module, names=[alias], level=0))
    else:
        module = alias.name
        line = ast.unparse(ast.Import(names=[alias]))
    if module.split(".")[0] not in sys.stdlib_module_names:
        raise ValueError(
            f"{name} (imported from {module}, not the standard library: import it inside the "
            "function if OpenAI's grader sandbox has it)"
        )
    return line
