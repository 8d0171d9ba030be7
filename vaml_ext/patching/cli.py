"""``vaml-patch``: apply, check, diff and refresh patch series against pinned upstreams.

Usage::

    vaml-patch list                    # the upstreams under patches/
    vaml-patch apply [NAME ...]        # build third_party/<dest> = upstream + series
    vaml-patch check [NAME ...]        # dry run in a temp dir
    vaml-patch diff NAME [--stat]      # whole change vs pristine upstream, for review
    vaml-patch refresh NAME            # regenerate patch files from commits in the tree
    vaml-patch status [NAME ...]

Without NAME, ``apply``/``check``/``status`` act on every upstream under ``patches/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vaml_ext.patching import core
from vaml_ext.patching.errors import PatchToolError
from vaml_ext.patching.spec import list_specs, load_spec


def find_repo_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "patches").is_dir() and (d / "vaml_ext").is_dir():
            return d
    pkg_root = Path(__file__).resolve().parents[2]
    if (pkg_root / "patches").is_dir():
        return pkg_root
    raise PatchToolError("cannot find the repository root (a directory with patches/ and vaml_ext/); use --repo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vaml-patch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=None, help="repository root (default: auto)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list upstreams")
    p = sub.add_parser("apply", help="build the patched tree(s)")
    p.add_argument("names", nargs="*")
    p.add_argument("--force", action="store_true", help="discard local edits in the tree")
    p = sub.add_parser("check", help="dry-run the series in a temporary directory")
    p.add_argument("names", nargs="*")
    p = sub.add_parser("diff", help="print the whole change against pristine upstream")
    p.add_argument("name")
    p.add_argument("--stat", action="store_true")
    p = sub.add_parser("refresh", help="regenerate patch files from the tree's commits")
    p.add_argument("name")
    p = sub.add_parser("status", help="state of the built tree(s)")
    p.add_argument("names", nargs="*")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        root = args.repo.resolve() if args.repo else find_repo_root()
        if args.cmd == "list":
            for key in list_specs(root):
                spec = load_spec(root, key)
                print(f"{key}\t{spec.describe()}\t{len(spec.series())} patches\t-> {spec.dest.relative_to(root)}")
            return 0
        if args.cmd in ("apply", "check", "status"):
            names = args.names or list_specs(root)
            for key in names:
                spec = load_spec(root, key)
                if args.cmd == "apply":
                    core.apply(spec, root, force=args.force, log=log)
                elif args.cmd == "check":
                    core.check(spec, root, log=log)
                else:
                    print(f"{key}: {core.status(spec)}")
            return 0
        spec = load_spec(root, args.name)
        if args.cmd == "diff":
            sys.stdout.write(core.diff(spec, root, stat=args.stat))
        elif args.cmd == "refresh":
            core.refresh(spec, root, log=log)
        return 0
    except PatchToolError as e:
        print(f"vaml-patch: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vaml-patch: interrupted; the destination tree was not modified", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
