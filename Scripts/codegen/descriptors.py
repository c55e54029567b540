#!/usr/bin/env python3
"""Build a FileDescriptorSet for the Envoy v3 API from the xds-protos wheel.

The xds-protos wheel ships no .proto sources, only the compiled Python `_pb2`
modules. Each of them carries its FileDescriptor (`DESCRIPTOR`), whose
`dependencies` name the files it imports. This helper imports the root modules
listed in roots.txt, walks their imports to the transitive closure and writes:

  * a serialized google.protobuf.FileDescriptorSet holding every file of the
    closure (google/protobuf/* included), dependencies before dependents;
  * a text file with the names of the files to generate Swift for, one a line
    (the closure without google/protobuf/*, whose Swift types ship inside the
    SwiftProtobuf runtime).

Both outputs depend only on roots.txt and the pinned wheels, and are written
byte-for-byte deterministically (files in a fixed order, deterministic
serialization).

Usage: descriptors.py ROOTS_TXT OUT_FDS OUT_FILE_LIST
"""

from __future__ import annotations

import importlib
import os
import sys

from google.protobuf import descriptor_pb2

WKT_PREFIX = "google/protobuf/"


def fail(message: str) -> "None":
    sys.stderr.write(f"descriptors.py: error: {message}\n")
    sys.exit(1)


def proto_to_module(proto_path: str) -> str:
    if not proto_path.endswith(".proto"):
        fail(f"not a .proto path: {proto_path!r}")
    return proto_path[: -len(".proto")].replace("/", ".") + "_pb2"


def expand_glob(pattern: str) -> list[str]:
    """Expand "dir/*.proto" to every file of that directory the wheel ships."""
    directory = pattern[: -len("/*.proto")]
    package_name = directory.replace("/", ".")
    try:
        package = importlib.import_module(package_name)
    except ImportError as error:
        fail(f"roots.txt: no package {package_name!r} for {pattern!r} ({error})")
    names: set[str] = set()
    for folder in package.__path__:
        for entry in os.listdir(folder):
            if entry.endswith("_pb2.py"):
                names.add(f"{directory}/{entry[: -len('_pb2.py')]}.proto")
    if not names:
        fail(f"roots.txt: {pattern!r} matches no file")
    return sorted(names)


def read_roots(path: str) -> list[str]:
    roots: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("/*.proto"):
                roots.extend(expand_glob(line))
            elif "*" in line:
                fail(f"roots.txt: only a trailing '/*.proto' glob is supported: {line!r}")
            else:
                roots.append(line)
    seen: set[str] = set()
    unique = []
    for root in roots:
        if root not in seen:
            seen.add(root)
            unique.append(root)
    return unique


def load_root(proto_path: str):
    module_name = proto_to_module(proto_path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        fail(f"root {proto_path!r}: cannot import {module_name!r} ({error})")
    descriptor = module.DESCRIPTOR
    if descriptor.name != proto_path:
        fail(f"root {proto_path!r}: module {module_name!r} describes {descriptor.name!r}")
    return descriptor


def closure_in_dependency_order(roots) -> list:
    """Depth-first post-order over imports: every file follows its imports."""
    ordered = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(file_descriptor, chain):
        name = file_descriptor.name
        mark = state.get(name)
        if mark == "done":
            return
        if mark == "visiting":
            fail("import cycle: " + " -> ".join(chain + [name]))
        state[name] = "visiting"
        for dependency in file_descriptor.dependencies:
            visit(dependency, chain + [name])
        state[name] = "done"
        ordered.append(file_descriptor)

    for root in roots:
        visit(root, [])
    return ordered


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    roots_txt, out_fds, out_files = argv[1:]

    roots = [load_root(path) for path in read_roots(roots_txt)]
    files = closure_in_dependency_order(roots)

    file_set = descriptor_pb2.FileDescriptorSet()
    for file_descriptor in files:
        file_descriptor.CopyToProto(file_set.file.add())
    with open(out_fds, "wb") as handle:
        handle.write(file_set.SerializeToString(deterministic=True))

    to_generate = sorted(f.name for f in files if not f.name.startswith(WKT_PREFIX))
    with open(out_files, "w", encoding="utf-8") as handle:
        for name in to_generate:
            handle.write(name + "\n")

    sys.stderr.write(
        f"descriptors.py: {len(roots)} roots, {len(files)} files in closure, "
        f"{len(to_generate)} to generate\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
