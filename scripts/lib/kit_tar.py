#!/usr/bin/env python3
"""Tar helpers for scripts/kit.sh (stdlib only).

  kit_tar.py retop NEW      stream a tar from stdin to stdout, renaming its
                            single top-level directory to NEW (hard-link
                            targets too).  Uncompressed in, uncompressed out:
                            let xz run in separate processes around it.
  kit_tar.py check TAR PREFIX...
                            check that every member path is relative, has no
                            '..' component, starts with one of PREFIX..., and
                            that every symlink / hard link resolves inside the
                            tar's own tree.  Exit 1 with a list of problems.
"""
import os
import posixpath
import sys
import tarfile

BUF = 1 << 20


def retop(new):
    src = tarfile.open(fileobj=sys.stdin.buffer, mode="r|", bufsize=BUF)
    dst = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", bufsize=BUF,
                       format=tarfile.PAX_FORMAT)
    old = None
    n = 0

    def rename(name):
        head, sep, rest = name.partition("/")
        if head != old:
            raise SystemExit(f"retop: member {name!r} is outside top dir {old!r}")
        return new + sep + rest

    for m in src:
        name = m.name.lstrip("/")
        while name.startswith("./"):
            name = name[2:]
        if name in ("", "."):
            continue
        if old is None:
            old = name.partition("/")[0]
            print(f"retop: {old}/ -> {new}/", file=sys.stderr)
        m.name = rename(name)
        if m.islnk():
            m.linkname = rename(m.linkname.lstrip("/").removeprefix("./"))
        # Drop per-member pax path overrides from the input, the new name rules.
        for k in ("path", "linkpath"):
            m.pax_headers.pop(k, None)
        if m.isreg():
            dst.addfile(m, src.extractfile(m))
        else:
            dst.addfile(m)
        n += 1
    dst.close()
    src.close()
    if n == 0:
        raise SystemExit("retop: empty input")
    print(f"retop: {n} members", file=sys.stderr)


def check(path, prefixes):
    problems = []
    with tarfile.open(path, "r:*") as tf:
        members = tf.getmembers()
    names = {}
    for m in members:
        name = m.name
        if name.startswith("/") or name.startswith("./") or name in (".", ""):
            problems.append(f"bad member name {name!r}")
            continue
        name = name.rstrip("/")
        if ".." in name.split("/"):
            problems.append(f"'..' in member name {name!r}")
        if prefixes and not any(name == p.rstrip("/") or name.startswith(p) for p in prefixes):
            problems.append(f"member {name!r} outside {prefixes}")
        names[name] = m

    dirs = {n for n, m in names.items() if m.isdir()}
    # implicit parents of every member are directories when extracted
    for n in list(names):
        p = posixpath.dirname(n)
        while p:
            dirs.add(p)
            p = posixpath.dirname(p)

    def resolve(path, depth=0):
        """Resolve path (relative to tree root) through symlinks in the tar.
        Return the final path, or None if it escapes / is missing / loops."""
        if depth > 40:
            return None
        parts = [c for c in path.split("/") if c not in ("", ".")]
        cur = []
        for i, c in enumerate(parts):
            if c == "..":
                if not cur:
                    return None  # escapes the tree
                cur.pop()
                continue
            cand = "/".join(cur + [c])
            m = names.get(cand)
            if m is not None and m.issym():
                tgt = m.linkname
                base = "" if tgt.startswith("/") else "/".join(cur)
                r = resolve(posixpath.join(base, tgt.lstrip("/")), depth + 1)
                if r is None:
                    return None
                cur = r.split("/") if r else []
            elif m is not None or cand in dirs:
                cur.append(c)
            else:
                return None
        return "/".join(cur)

    nsym = 0
    for n, m in names.items():
        if m.issym():
            nsym += 1
            if m.linkname.startswith("/"):
                problems.append(f"absolute symlink {n} -> {m.linkname}")
                continue
            if resolve(n) is None:
                problems.append(f"dangling/escaping symlink {n} -> {m.linkname}")
        elif m.islnk():
            if m.linkname.rstrip("/") not in names:
                problems.append(f"hard link {n} -> missing {m.linkname}")
    for p in problems:
        print(f"check {os.path.basename(path)}: {p}", file=sys.stderr)
    print(f"check {os.path.basename(path)}: {len(names)} members, {nsym} symlinks, "
          f"{len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def main(argv):
    if len(argv) == 2 and argv[0] == "retop":
        retop(argv[1])
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        return check(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
