"""Facts about Triton's TensorRT-LLM C++ backend, read from its sources.

* :func:`backend_parameters` — every ``GetParameter<T>("name")`` in ``model_instance_state.cc`` /
  ``model_state.cc``: the type, whether the read is guarded by ``try`` (has a default) or not (a missing key
  throws "Cannot find parameter with name" and the model fails to load), the default, the accepted values
  of string parameters the backend compares, and what an invalid value does.
* :func:`type_parsers` — how ``ModelState::GetParameter<T>`` turns the string into a T (``std::stoi``, the
  accepted spellings of a bool).
* :func:`model_tensors` — inputs and outputs of the upstream ``tensorrt_llm/config.pbtxt`` template.
* :func:`request_errors` — the messages ``utils.cc`` throws for a malformed request.
"""

from __future__ import annotations

import re
from typing import Any

from trtbuild.contracts.cpp_source import CppSource, joined_literals, string_literals

_CALL = re.compile(r"GetParameter<")
_NULLS = ("std::nullopt", "nullptr")


def _template_arg(text: str, start: int) -> tuple[str, int]:
    """``GetParameter<...>(`` → (the type between the angle brackets, offset after the closing ``>``)."""
    depth, i = 1, start
    while depth and i < len(text):
        depth += {"<": 1, ">": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1].strip(), i


def _call_arg(text: str, start: int) -> tuple[str, int]:
    depth, i = 1, start + 1
    while depth and i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return text[start + 1:i - 1].strip(), i


def _literal(value: str) -> Any:
    value = value.strip()
    if value in _NULLS:
        return None
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d*f?", value):
        return float(value.rstrip("f"))
    if value.startswith('"'):
        return joined_literals(value)
    return value  # a symbolic default (an enum or a named constant), kept as written


def _statement_start(text: str, pos: int) -> int:
    return max(text.rfind(c, 0, pos) for c in ";{}") + 1


def backend_parameters(instance_state: str, model_state: str) -> dict[str, Any]:
    """Every parameter the backend reads, from the two sources' texts."""
    params: list[dict[str, Any]] = []
    variables: dict[str, str] = {}
    for file, text in (("model_instance_state.cc", instance_state), ("model_state.cc", model_state)):
        src = CppSource(text)
        for m in _CALL.finditer(src.text):
            ctype, after = _template_arg(src.text, m.end())
            if src.text[after:after + 1] != "(":
                continue
            arg, end = _call_arg(src.text, after)
            func, func_start = src.function_at(m.start())
            name = _resolve_name(src.text, arg, func_start, m.start())
            if name is None:
                continue  # a specialisation forwarding its own argument, not a read of a named parameter
            entry = _describe(src, file, func, func_start, name, ctype, m.start(), end)
            params.append(entry)
            if entry.get("variable"):
                variables[entry.pop("variable")] = name
    groups = _one_of_groups(instance_state, variables)
    return {"parameters": params, "required_one_of": groups}


def _resolve_name(text: str, arg: str, func_start: int, pos: int) -> str | None:
    lits = string_literals(arg)
    if lits and arg.startswith('"'):
        return "".join(lits)
    if re.fullmatch(r"\w+", arg):
        assigned = list(re.finditer(rf"\b{arg}\s*=\s*((?:\"[^\"]*\"\s*)+);", text[func_start:pos]))
        if assigned:
            return joined_literals(assigned[-1].group(1))
    return None


def _describe(src: CppSource, file: str, func: str, func_start: int, name: str, ctype: str,
              pos: int, end: int) -> dict[str, Any]:
    text = src.text
    stmt = text[_statement_start(text, pos):pos]
    var_m = re.search(r"(?:([\w:<>]+)\s+)?(\w+)\s*=\s*(?:\w+(?:->|\.))?\s*$", stmt)
    declared_here = bool(var_m and var_m.group(1))
    variable = var_m.group(2) if var_m else None
    guard = src.in_try(pos)
    entry: dict[str, Any] = {"name": name, "type": ctype, "file": file, "function": func,
                             "line": src.line_of(pos), "required": guard is None}
    default: Any = None
    if variable and not declared_here:
        decl = list(re.finditer(rf"\b{variable}\s*=\s*([^;,]+)[;,]", text[func_start:pos]))
        if decl:
            default = _literal(decl[-1].group(1))
    entry["default"] = default
    catch = src.catch_after(guard) if guard else None
    if guard is not None:
        try_body = src.body(guard)
        after_read = try_body[end - guard.open - 1:]
        catch_body = src.body(catch) if catch else ""
        if catch is not None and re.search(r"\b(TLLM_THROW|throw)\b", catch_body):
            entry["missing"] = "throws: " + (joined_literals(catch_body) or "error")
        elif re.search(r"\bTLLM_THROW\b", after_read) and not catch_body.strip():
            entry["missing"] = "ignored"
            entry["note"] = ("the backend throws when this key is present, inside its own try block, so the "
                             "throw is swallowed: the key has no effect")
        elif variable is None:
            entry["missing"] = "ignored"
            entry["note"] = joined_literals(catch_body) or joined_literals(after_read)
        else:
            entry["missing"] = "default"
            note = joined_literals(catch_body) or joined_literals(after_read)
            entry["note"] = name + note if note.startswith(" ") else note
        cond = [b.head for b in src.enclosing(guard.open) if b.kind == "if" and b.open > func_start]
        if cond:
            entry["condition"] = cond[-1]
    else:
        entry["missing"] = "throws: Cannot find parameter with name: " + name
    accepted, maps_to, target = _accepted(text, variable, pos)
    if accepted:
        entry["accepted"] = accepted
        entry["maps_to"] = maps_to
        entry["invalid"] = "warns and uses the default" if guard is not None else "throws: the model fails to load"
        init = list(re.finditer(rf"\b{target}\s*=\s*([^;,]+)[;,]", text[func_start:pos])) if target else []
        if default is None and init:
            value = init[-1].group(1).strip()
            entry["default"] = next((k for k, v in maps_to.items() if v == value), _literal(value))
    if variable:
        nxt = text.find("\n}", pos)
        if re.search(rf"\b{variable}\.empty\(\)", text[pos:nxt if nxt != -1 else len(text)]):
            entry["empty_is_unset"] = True
        entry["variable"] = variable
    return entry


def _accepted(text: str, variable: str | None, pos: int) -> tuple[list[str], dict[str, str], str]:
    """Values the code compares ``variable`` with, what each maps to, and the variable they are mapped into."""
    if not variable:
        return [], {}, ""
    nxt = text.find("\n}", pos)
    body = text[pos:nxt if nxt != -1 else len(text)]
    values: list[str] = []
    maps: dict[str, str] = {}
    into = ""
    for m in re.finditer(r"if\s*\(([^{]*?)\)\s*\{\s*([^;{}]*);", body):
        found = re.findall(rf"\b{variable}\s*==\s*\"([^\"]*)\"", m.group(1))
        if not found:
            continue
        lhs, _, rhs = m.group(2).partition("=")
        into = into or lhs.strip()
        for value in found:
            if value not in values:
                values.append(value)
                maps[value] = rhs.strip()
    return values, maps, into


def _one_of_groups(text: str, variables: dict[str, str]) -> list[list[str]]:
    groups = []
    for m in re.finditer(r"!\s*(\w+)\.empty\(\)\s*\|\|\s*!\s*(\w+)\.empty\(\)", text):
        names = [variables.get(v) for v in m.groups()]
        if all(names):
            groups.append([str(n) for n in names])
    return groups


def type_parsers(model_state: str) -> dict[str, Any]:
    """``GetParameter<T>`` specialisations: the std:: conversion per T and the accepted bool spellings."""
    src = CppSource(model_state)
    out: dict[str, Any] = {}
    for m in re.finditer(r"template\s*<>\s*\n?\s*([\w:<>, ]+?)\s+\w+::GetParameter<", src.text):
        ctype, after = _template_arg(src.text, m.end())
        brace = src.text.find("{", after)
        block = next(b for b in src.blocks if b.open == brace)
        body = src.body(block)
        if ctype == "bool":
            groups = re.findall(r"if\s*\(([^)]*)\)", body)
            out["bool"] = {"true": string_literals(groups[0]), "false": string_literals(groups[1])}
        else:
            conv = re.search(r"(std::\w+)\(\s*GetParameter<std::string>", body)
            if conv:
                out[ctype] = conv.group(1)
            elif "csvStrToVecVecInt" in body:
                out[ctype] = "utils::csvStrToVecVecInt"
            elif "csvStrToVecInt" in body:
                out[ctype] = "utils::csvStrToVecInt"
            elif ctype == "std::string":
                out[ctype] = "string_value as is"
    return out


_TENSOR = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", re.DOTALL)


def model_tensors(pbtxt: str) -> dict[str, Any]:
    """Inputs / outputs (name, dtype, dims, reshape, optional, ragged) and parameter keys of a config.pbtxt."""
    text = "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("string_value") else line
                     for line in pbtxt.splitlines())
    out: dict[str, Any] = {}
    for section in ("input", "output"):
        m = re.search(rf"^{section}\s*\[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
        items = []
        for t in _TENSOR.finditer(m.group(1) if m else ""):
            body = t.group(1)
            name = re.search(r'name:\s*"([^"]+)"', body)
            dtype = re.search(r"data_type:\s*(\S+)", body)
            dims = re.search(r"dims:\s*\[([^\]]*)\]", body)
            reshape = re.search(r"reshape:\s*\{\s*shape:\s*\[([^\]]*)\]", body)
            if not (name and dtype and dims):
                continue
            item: dict[str, Any] = {"name": name.group(1), "data_type": dtype.group(1),
                                    "dims": [int(d) for d in dims.group(1).replace(",", " ").split()]}
            if reshape:
                item["reshape"] = [int(d) for d in reshape.group(1).replace(",", " ").split()]
            if section == "input":
                item["optional"] = bool(re.search(r"optional:\s*true", body))
                item["ragged"] = bool(re.search(r"allow_ragged_batch:\s*true", body))
            items.append(item)
        out[section + "s"] = items
    params = re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text)
    out["template_parameters"] = [{"key": k, "value": v} for k, v in params]
    return out


def request_errors(utils_cc: str) -> list[dict[str, str]]:
    """Messages ``utils.cc`` throws for a request, with the function that throws them."""
    src = CppSource(utils_cc)
    out = []
    for m in re.finditer(r"(?:TLLM_THROW|throw std::runtime_error|throw std::invalid_argument)\s*\(", src.text):
        arg, _ = _call_arg(src.text, m.end() - 1)
        message = joined_literals(arg.split(",")[0] if arg.startswith('"') and "%" in arg else arg)
        if message:
            out.append({"function": src.function_at(m.start())[0] or "", "message": message})
    return out
