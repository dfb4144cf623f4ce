"""Thin wrappers over the git CLI for the GitLab stand-in's bare repositories.

Every call uses an argument list (never a shell) and ``--end-of-options`` wherever user-supplied refs reach
git, so a ref such as ``--upload-pack=...`` can never be read as an option.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Fields are separated by \x1f and records by \x1e: neither can appear in refs or (sane) commit messages.
_FS = "\x1f"
_RS = "\x1e"
_COMMIT_FORMAT = _FS.join(["%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B"])
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Sandbox GitLab",
    "GIT_AUTHOR_EMAIL": "gitlab@sandbox.invalid",
    "GIT_COMMITTER_NAME": "Sandbox GitLab",
    "GIT_COMMITTER_EMAIL": "gitlab@sandbox.invalid",
}


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Commit:
    sha: str
    parent_ids: list[str]
    author_name: str
    author_email: str
    authored_date: str
    committer_name: str
    committer_email: str
    committed_date: str
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class Tag:
    name: str
    target: str  # the tag object's sha for annotated tags, the commit sha for lightweight ones
    commit_sha: str
    message: str  # empty for lightweight tags


def git_env() -> dict[str, str]:
    # Isolate from the host user's git config (signing, hooks, default branch...) so behaviour is stable.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_IDENTITY)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(repo: Path, *args: str, input_bytes: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input_bytes,
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
    return proc.stdout.decode(errors="replace")


def init_bare_from_dir(
    bare: Path, source: Path, branch: str = "main", message: str = "Initial commit"
) -> None:
    """Create ``bare`` and push one commit holding ``source``'s files to ``branch``."""
    if bare.exists():
        raise GitError(f"{bare} already exists")
    bare.parent.mkdir(parents=True, exist_ok=True)
    run_git(bare.parent, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    with tempfile.TemporaryDirectory(prefix="gitlab-standin-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git"))
        run_git(work, "init", "--quiet", f"--initial-branch={branch}")
        run_git(work, "add", "--all")
        run_git(work, "commit", "--quiet", "--allow-empty", "-m", message)
        run_git(work, "push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}")


def commit_dir(bare: Path, source: Path, branch: str = "main", message: str = "Update") -> bool:
    """Make ``branch`` hold exactly ``source``'s files with one new commit; False when they are unchanged."""
    with tempfile.TemporaryDirectory(prefix="gitlab-standin-") as tmp:
        work = Path(tmp) / "work"
        run_git(Path(tmp), "clone", "--quiet", "--branch", branch, "--", str(bare), str(work))
        for child in work.iterdir():
            if child.name == ".git":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True)
        run_git(work, "add", "--all")
        if not run_git(work, "status", "--porcelain").strip():
            return False
        run_git(work, "commit", "--quiet", "-m", message)
        run_git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return True


def resolve_commit(bare: Path, ref: str) -> str | None:
    if not ref:
        return None
    try:
        return run_git(
            bare, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        ).strip()
    except GitError:
        return None


def valid_ref_name(full_ref: str) -> bool:
    try:
        run_git(Path("."), "check-ref-format", full_ref)
    except GitError:
        return False
    return True


def _parse_commit(fields: list[str]) -> Commit:
    sha, parents, an, ae, ad, cn, ce, cd, body = fields
    return Commit(sha, parents.split(), an, ae, ad, cn, ce, cd, body.rstrip("\n"))


def commit_info(bare: Path, sha: str) -> Commit:
    out = run_git(bare, "show", "--no-patch", f"--format={_COMMIT_FORMAT}", "--end-of-options", sha)
    return _parse_commit(out.rstrip("\n").split(_FS))


def log(bare: Path, ref: str, max_count: int) -> list[Commit]:
    out = run_git(
        bare, "log", f"--max-count={max_count}", f"--format={_COMMIT_FORMAT}{_RS}", "--end-of-options", ref
    )
    return [_parse_commit(rec.lstrip("\n").split(_FS)) for rec in out.split(_RS) if rec.strip()]


def branches(bare: Path) -> dict[str, str]:
    out = run_git(bare, "for-each-ref", f"--format=%(refname:lstrip=2){_FS}%(objectname)", "refs/heads/")
    return dict(line.split(_FS) for line in out.splitlines() if line)


def tags(bare: Path) -> list[Tag]:
    fmt = _FS.join(["%(refname:lstrip=2)", "%(objectname)", "%(objecttype)", "%(*objectname)", "%(contents)"])
    out = run_git(bare, "for-each-ref", f"--format={fmt}{_RS}", "refs/tags/")
    result = []
    for rec in out.split(_RS):
        if not rec.strip():
            continue
        name, obj, objtype, peeled, contents = rec.lstrip("\n").split(_FS)
        annotated = objtype == "tag"
        result.append(
            Tag(name, obj, peeled if annotated else obj, contents.rstrip("\n") if annotated else "")
        )
    return result


def create_tag(bare: Path, name: str, sha: str, message: str | None) -> None:
    if message:
        run_git(bare, "tag", "--annotate", "--message", message, "--end-of-options", name, sha)
    else:
        run_git(bare, "tag", "--end-of-options", name, sha)


def delete_tag(bare: Path, name: str) -> None:
    run_git(bare, "update-ref", "-d", f"refs/tags/{name}")


def create_branch(bare: Path, name: str, sha: str) -> None:
    run_git(bare, "update-ref", f"refs/heads/{name}", sha, "0" * 40)


def delete_branch(bare: Path, name: str) -> None:
    run_git(bare, "update-ref", "-d", f"refs/heads/{name}")
