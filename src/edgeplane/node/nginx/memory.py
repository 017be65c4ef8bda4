"""Memory of a process tree, as PSS from /proc/<pid>/smaps_rollup (Linux)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (forked by its main thread, as nginx's workers are): one
    read of ``/proc/<pid>/task/<pid>/children``, else a scan of every process (the engine
    asks every 2 ms during a reload: the scan read hundreds of files each time)."""
    try:
        listed = (PROC / str(pid) / "task" / str(pid) / "children").read_text()
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN, or pid gone
        if (PROC / str(pid)).exists():
            return _scan_children(pid)
        return []
    except OSError:
        return []
    return sorted(int(p) for p in listed.split())


def _scan_children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command may hold spaces and parentheses: fields start after the last ")"
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return sorted(out)


def pss_kib(pid: int) -> int:
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree_pss_mib(pid: int) -> tuple[float, int]:
    """(PSS of ``pid`` and its children in MiB, number of children)."""
    kids = children(pid)
    total = pss_kib(pid) + sum(pss_kib(k) for k in kids)
    return total / 1024, len(kids)


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def accepting_workers(master: int) -> list[int]:
    """Worker processes of ``master`` that still accept (not shutting down after a reload)."""
    return [
        pid
        for pid in children(master)
        if "worker process" in (title := cmdline(pid)) and "shutting down" not in title
    ]
