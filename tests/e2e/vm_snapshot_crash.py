#!/usr/bin/env python3
"""Kill snapshot operations at each of their steps (SIGKILL through
$VMBACK_CRASH_AT) and check that nothing is lost: after the kill the VM
reads the same bytes and every snapshot still listed reads its own bytes;
`vm snapshot consolidate` then finishes the job and leaves no stray
files; the operation can be run again.

usage: vm_snapshot_crash.py VMBACK WORKDIR  -> prints "ok N - ..." lines
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm_snapshot_model import Harness  # noqa: E402

# (operation, crash point) pairs: every step of delete, delete-all,
# revert, create and consolidate.
CASES = [
    ("create", "snapshot-child"), ("create", "snapshot-create-vmx"),
    ("delete-base", "snapshot-delete-vmsd"), ("delete-base", "merge-journal"),
    ("delete-base", "merge-half"), ("delete-base", "merge-data"),
    ("delete-base", "merge-reparent"), ("delete-base", "merge-vmx"),
    ("delete-base", "merge-remove:1"), ("delete-base", "merge-remove:2"),
    ("delete-mid", "merge-journal"), ("delete-mid", "merge-half"),
    ("delete-mid", "merge-data"), ("delete-mid", "merge-reparent"),
    ("delete-mid", "merge-vmx"), ("delete-mid", "merge-remove:1"),
    ("delete-all", "snapshot-delete-all-vmsd"), ("delete-all", "merge-journal"),
    ("delete-all", "merge-half"), ("delete-all", "merge-data"),
    ("delete-all", "merge-vmx"), ("delete-all", "merge-remove:1"),
    ("delete-all", "merge-remove:3"),
    ("revert", "snapshot-revert-vmx"), ("revert", "consolidate-stray"),
    ("consolidate", "merge-half"), ("consolidate", "merge-remove:1"),
]


def setup(vmback, work):
    """A VM with three snapshots and writes between them."""
    h = Harness(vmback, work, 7)
    h.checking = False
    h.qemu = False
    h.create_vm()
    for name in ("s1", "s2", "s3"):
        h.write(3)
        h.create(name)
    h.write(3)
    h.checking = True
    return h


def clone(t, work):
    """A copy of template harness t (VM directory and model) in work."""
    shutil.copytree(os.path.join(t.work, "vm"), os.path.join(work, "vm"), symlinks=True)
    h = Harness(t.vmback, work, 7)
    h.qemu = False
    h.vmx_fixed = t.vmx_fixed
    h.cur = {d: bytearray(v) for d, v in t.cur.items()}
    h.snaps = {u: {"name": s["name"], "parent": s["parent"], "data": dict(s["data"])}
               for u, s in t.snaps.items()}
    h.current = t.current
    return h


def crash(h, point, *args):
    h.env["VMBACK_CRASH_AT"] = point
    p = h.run(*args, check=False)
    del h.env["VMBACK_CRASH_AT"]
    if p.returncode != -9:
        sys.exit("FAIL: %s did not stop at %s (exit %d: %s)"
                 % (" ".join(args), point, p.returncode, p.stderr.decode().strip()))


def run_case(template, work, op, point):
    h = clone(template, work)
    uids = sorted(h.snaps)
    lack = ()
    if op == "create":
        crash(h, point, "vm", "snapshot", "create", h.vmx, "new")
    elif op in ("delete-base", "delete-mid"):
        uid = uids[0] if op == "delete-base" else uids[1]
        crash(h, point, "vm", "snapshot", "delete", h.vmx, h.snaps[uid]["name"])
        lack = (uid,)
    elif op == "delete-all":
        crash(h, point, "vm", "snapshot", "delete-all", h.vmx)
        lack = tuple(uids)
    elif op == "revert":
        crash(h, point, "vm", "snapshot", "revert", h.vmx, "s1")
    elif op == "consolidate":
        # a delete whose merge never ran, then a consolidate killed in turn
        crash(h, "merge-journal", "vm", "snapshot", "delete", h.vmx, "s1")
        lack = (uids[0],)
        crash(h, point, "vm", "snapshot", "consolidate", h.vmx)
    # the VM and its snapshots read what they did (not counting the
    # current-snapshot marker and leftovers, which consolidate settles)
    h.checking = True
    files = h.snapshot_files()
    for dev in h.devices:
        if h.read(h.leaf(dev)) != bytes(h.cur[dev]) and op != "revert":
            sys.exit("FAIL %s@%s: current data of %s changed" % (op, point, dev))
        for uid in files:
            if h.read(files[uid][dev]) != h.snaps[uid]["data"][dev]:
                sys.exit("FAIL %s@%s: snapshot %d of %s changed" % (op, point, uid, dev))
    h.run("vm", "snapshot", "consolidate", h.vmx)
    files = h.snapshot_files()
    for uid in list(h.snaps):
        if uid not in files:
            del h.snaps[uid]
    if op == "revert":
        leaf_data = {d: h.read(h.leaf(d)) for d in h.devices}
        if leaf_data != {d: bytes(h.cur[d]) for d in h.devices}:
            if leaf_data != {d: h.snaps[uids[0]]["data"][d] for d in h.devices}:
                sys.exit("FAIL %s@%s: after revert the VM reads neither state" % (op, point))
            h.revert(uids[0])   # finish it: the marker must follow
    else:
        import json
        info = json.loads(h.run("--json", "vm", "info", h.vmx).stdout)
        h.current = info["current-snapshot"]
    h.step("%s killed at %s, consolidated" % (op, point), lack)
    # the operation works afterwards
    if op == "create":
        h.create("again")
    elif op.startswith("delete") and h.snaps:
        h.delete_all()
    h.write(2)


def main():
    vmback, work = sys.argv[1], sys.argv[2]
    only = sys.argv[3:]
    n = 0
    tdir = os.path.join(work, "template")
    os.makedirs(tdir)
    template = setup(vmback, tdir)
    cases = CASES
    if os.environ.get("VMBACK_TEST_QUICK"):   # sanitizer builds: every third case
        cases = CASES[::3]
    for op, point in cases:
        if only and "%s@%s" % (op, point) not in only:
            continue
        d = os.path.join(work, "case%d" % n)
        os.makedirs(d)
        run_case(template, d, op, point)
        shutil.rmtree(d)
        n += 1
    print("%d kill cases passed" % n)


if __name__ == "__main__":
    main()
