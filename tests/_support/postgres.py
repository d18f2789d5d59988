"""A throwaway PostgreSQL cluster for tests, from the Debian `postgresql` package.

`initdb` and `pg_ctl` from /usr/lib/postgresql/*/bin run a cluster in a fresh directory
under the system temporary directory, listening on a unix socket there only (no TCP
port to collide with). PostgreSQL refuses to run as root, and CI runs as root: then the
cluster runs as `nobody` (through `runuser`) and the directory is handed to that user.
`stop()` shuts the server down and removes the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresCluster", "find_bin"]


def find_bin() -> Path | None:
    """The newest installed PostgreSQL bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """One running cluster; `url` connects as the superuser `postgres`, no password."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        # Under the system temp dir, not pytest's tmp_path: pytest's is private to root,
        # and the server's user must reach its directory. Short, for the socket path.
        self.root = Path(tempfile.mkdtemp(prefix="segpg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "nobody", "--"]
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o",
            f"-c listen_addresses='' -k {self.root} -c fsync=off -c full_page_writes=off",
            "start",
        )
        self.url = f"postgresql://postgres@/postgres?host={self.root}"

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._prefix, *command], capture_output=True, text=True,
                                timeout=120, check=False, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{log}")

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                      "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
