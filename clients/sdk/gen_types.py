"""Generate the SDK's typed results (frozen dataclasses, Python enums) from the protos.

    python -m clients.sdk.gen_types          # rewrite clients/sdk/types/*.py
    python -m clients.sdk.gen_types --check  # exit 1 if they are stale (a test runs this)

Why generated: 12 services answer with ~100 messages; hand-kept copies would drift
from the protos. The output is plain code, committed, so readers and type checkers
see every field. One module per proto file, named after it.
"""

from __future__ import annotations

import keyword
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor

PROTOS = (
    "common", "verification", "lookup", "catalog", "receipt", "access", "usage", "emergency",
    "conflicts", "subject", "opening", "deadlines", "policy_admin",
)  # fmt: skip
OUT = Path(__file__).parent / "types"
PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"
# Entities an SDK method hands back on their own (`apply` -> the Application): their
# Result subclass adds the call's request id, which the bare entity, when nested, lacks.
ENTITY_RESULTS = (
    "Application", "Grant", "Emergency", "Dataset", "Correction", "Withdrawal",
    "OpeningSuspension",
)  # fmt: skip
_SCALARS = {
    FieldDescriptor.TYPE_STRING: ("str", '""'),
    FieldDescriptor.TYPE_BOOL: ("bool", "False"),
    FieldDescriptor.TYPE_BYTES: ("bytes", 'b""'),
    FieldDescriptor.TYPE_DOUBLE: ("float", "0.0"),
    FieldDescriptor.TYPE_FLOAT: ("float", "0.0"),
}
_WELL_KNOWN = {
    "google.protobuf.Timestamp": "datetime",
    "google.protobuf.Duration": "timedelta",
    "google.protobuf.Struct": "dict[str, Any]",
}


def _snake_upper(name: str) -> str:
    out = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name))
    return out.upper()


def member_name(enum: EnumDescriptor, value_name: str) -> str:
    """GRANT_STATUS_SUSPENDED -> SUSPENDED: the prefix repeats the enum's name."""
    prefix = _snake_upper(enum.name) + "_"
    short = value_name.removeprefix(prefix)
    return short if short.isidentifier() and not short[0].isdigit() else value_name


def _attr(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


class _Module:
    def __init__(self, fd: FileDescriptor) -> None:
        self.fd = fd
        self.imports: dict[str, set[str]] = {}
        self.lines: list[str] = []

    def _type(self, f: FieldDescriptor) -> tuple[str, str]:
        """The annotation and default of a field."""
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            k, v = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            return (
                f"dict[{self._one(k)}, {self._one(v)}]",
                "dataclasses.field(default_factory=dict)",
            )
        one = self._one(f)
        if f.is_repeated:
            return f"tuple[{one}, ...]", "()"
        if f.message_type is not None and f.message_type.full_name == "google.protobuf.Struct":
            return one, "dataclasses.field(default_factory=dict)"
        if f.message_type is not None:
            return f"{one} | None", "None"
        if f.enum_type is not None:
            first = f.enum_type.values_by_number[0].name
            return one, f"{one}.{member_name(f.enum_type, first)}"
        return one, _SCALARS.get(f.type, ("int", "0"))[1]

    def _one(self, f: FieldDescriptor) -> str:
        if f.message_type is not None:
            return _WELL_KNOWN.get(f.message_type.full_name) or self._ref(f.message_type)
        if f.enum_type is not None:
            return self._ref(f.enum_type)
        return _SCALARS.get(f.type, ("int", "0"))[0]

    def _ref(self, d: Descriptor | EnumDescriptor) -> str:
        if d.file.name != self.fd.name:
            module = Path(d.file.name).stem
            self.imports.setdefault(f"clients.sdk.types.{module}", set()).add(d.name)
        return d.name

    def enum(self, e: EnumDescriptor) -> None:
        self.lines += ["", "", f"class {e.name}(enum.Enum):"]
        self.lines += [f"    {member_name(e, v.name)} = {v.number}" for v in e.values]

    def message(self, m: Descriptor) -> None:
        self.lines += ["", "", "@dataclass(frozen=True)", f"class {m.name}:"]
        self.lines.append(f'    PROTO: ClassVar[str] = "{m.full_name}"')
        for f in m.fields:
            annotation, default = self._type(f)
            self.lines.append(f"    {_attr(f.name)}: {annotation} = {default}")
        if m.name.endswith("Response") and "request_id" not in m.fields_by_name:
            self.lines.append('    request_id: str = ""  # from the call\'s x-request-id trailer')
        if m.name in ENTITY_RESULTS:
            self.lines += ["", "", "@dataclass(frozen=True)", f"class {m.name}Result({m.name}):"]
            self.lines.append(
                f'    """A {m.name} as an SDK method returns it: with its call\'s id."""'
            )
            self.lines += ["", '    request_id: str = ""']

    def render(self) -> str:
        for e in self.fd.enum_types_by_name.values():
            self.enum(e)
        for m in self.fd.message_types_by_name.values():
            if not m.name.endswith("Request"):  # requests are built from the protos directly
                self.message(m)
        body = "\n".join(self.lines)
        head = [
            f'"""Typed results of {self.fd.name}. Generated by clients.sdk.gen_types: do not edit."""',
            "",
            "from __future__ import annotations",
            "",
        ]
        std = [
            line
            for line, used in (
                ("import enum", "(enum.Enum)" in body),
                ("import dataclasses", "dataclasses.field(" in body),
                ("from dataclasses import dataclass", True),
                ("from datetime import datetime, timedelta", "timedelta" in body),
                ("from datetime import datetime", "datetime" in body and "timedelta" not in body),
                ("from typing import Any, ClassVar", "Any]" in body),
                ("from typing import ClassVar", "Any]" not in body),
            )
            if used
        ]
        head += std
        if self.imports:
            head.append("")
            head += [
                f"from {mod} import {', '.join(sorted(names))}"
                for mod, names in sorted(self.imports.items())
            ]
        return "\n".join(head) + "\n" + body + "\n"


def repo_protos() -> descriptor_pool.DescriptorPool:
    """The descriptors of this checkout's proto/ files, compiled afresh into a pool of
    their own: the generated modules on the path (gen/) may be another checkout's."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("govgw/v1/*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", "--include_imports",
                f"--descriptor_set_out={out}", *files]  # fmt: skip
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on proto/")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool


def render_all() -> dict[Path, str]:
    out: dict[Path, str] = {}
    names: list[tuple[str, list[str]]] = []
    pool = repo_protos()
    for proto in PROTOS:
        fd = pool.FindFileByName(f"govgw/v1/{proto}.proto")
        out[OUT / f"{proto}.py"] = _Module(fd).render()
        public = list(fd.enum_types_by_name)
        for m in fd.message_types_by_name.values():
            if not m.name.endswith("Request"):
                public.append(m.name)
                if m.name in ENTITY_RESULTS:
                    public.append(f"{m.name}Result")
        names.append((proto, public))
    init = ['"""Every typed result. Generated by clients.sdk.gen_types: do not edit."""', ""]
    init += [f"from clients.sdk.types.{p} import {', '.join(sorted(n))}" for p, n in names]
    every = sorted(n for _, ns in names for n in ns)
    init += ["", "__all__ = [", *(f'    "{n}",' for n in every), "]"]
    out[OUT / "__init__.py"] = "\n".join(init) + "\n"
    return {path: _formatted(text, path) for path, text in out.items()}


def _formatted(text: str, path: Path) -> str:
    """As `ruff format` leaves it, so the committed files pass the format check."""
    for args in (
        ["check", "--select", "I", "--fix", "--exit-zero", "-q", "--stdin-filename", str(path)],
        ["format", "--stdin-filename", str(path)],
    ):
        cmd = [sys.executable, "-m", "ruff", *args, "-"]
        text = subprocess.run(cmd, input=text, capture_output=True, text=True, check=True).stdout
    return text


def main(argv: list[str]) -> int:
    stale = [p for p, text in render_all().items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"stale: {p} (run python -m clients.sdk.gen_types)", file=sys.stderr)
        return 1 if stale else 0
    for p, text in render_all().items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
