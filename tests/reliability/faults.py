#!/usr/bin/env python3
"""Fault campaign: inject I/O errors and crashes into vmback operations and
check that nothing is lost.

One small VM (an ESXi-style vmfs disk and a hosted monolithicSparse disk,
change tracking on), one standalone disk image and one repository live for
the whole run.  Each case prepares one operation (new data in the VM or the
disk, a snapshot to delete, a half-done merge to consolidate, extra points
to prune, garbage to collect), runs it once with a fault and once more
without, and checks after each run:

  - the faulted run failed with a short error (every line "vmback: ...",
    the injected errno's text and a quoted file name in it), or died of
    our SIGKILL, never of anything else, and never hung;
  - `vmback verify` passes;
  - every point listed is one we know, with the content its backup saw
    (its objects unchanged since it was restored bit-exactly once; every
    point is restored again at the end), and no point vanished that the
    operation had no business removing;
  - the VM's disks and the disk image read as they must: unchanged, or
    (restore --in-place) unchanged or completely restored; a restore
    SIGKILLed half way may leave the VM half restored under its
    vmback-restore-* snapshot, whose frozen layers must then hold the old
    bytes (counted as "halfway");
  - the next run of the same operation succeeds and finishes the job.

Faults: VMBACK_FAIL_AT=NAME:K=EIO|ENOSPC (the K-th pass of a failpoint, K
drawn from the passes the operation's last clean run made, counted with
VMBACK_FAIL_TRACE), NAME:K+=ENOSPC on the repository (a full disk from then
on), NAME:K=KILL (SIGKILL at that I/O step), VMBACK_CRASH_AT (the snapshot
manager's crashpoints) and SIGKILL after a random time.

  faults.py [--faults N] [--quick] [--seed S] [--ops a,b] [--disk-mib M]
            [--vmback PATH] [--workdir DIR] [--keep DIR] [--verbose]

Prints one summary line per operation and a total; exit status 1 when any
data was lost or anything unexpected happened (each is described).
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CHUNK = 256 << 10
MIB = 1 << 20
DISK_KEYS = ("scsi0:0", "scsi0:1")   # a vmfs disk and a monolithicSparse one
KEEP_LAST = 2
CMD_TIMEOUT = 300                 # seconds: longer is a hang
OPS = ("backup-vm", "backup-disk", "restore-vm", "snap-delete",
       "snap-consolidate", "prune", "gc")
# crashpoints of the snapshot manager (src/connectors/vmx-*.c)
MERGE_CRASHPOINTS = ("snapshot-delete-vmsd", "merge-journal", "merge-half",
                     "merge-data", "merge-vmx", "merge-reparent",
                     "merge-remove")
KILLED = -signal.SIGKILL


class Problem(Exception):
    """Data lost or something unexpected: ends the case."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind          # "lost" or "unexpected"


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Campaign:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.vmback = os.path.abspath(a.vmback)
        self.stats = {op: dict(faults=0, eio=0, enospc=0, kill=0, failed=0,
                               absorbed=0, missed=0, halfway=0, lost=0, unexpected=0)
                      for op in OPS}
        self.problems = []
        self.passes = {}          # op -> {failpoint: passes of its last clean run}
        self.duration = {}        # op -> seconds of its last clean run
        self.prof = {}            # command -> seconds spent

    # ---- running vmback -------------------------------------------------
    def env(self, extra=None):
        e = dict(os.environ)
        for k in ("VMBACK_FAIL_AT", "VMBACK_CRASH_AT", "VMBACK_FAIL_TRACE"):
            e.pop(k, None)
        e["VMBACK_REPO"] = self.repo
        e.update(extra or {})
        return e

    def run(self, args, extra=None, stdin=None, kill_after=None):
        """rc, stdout, stderr of vmback ARGS (rc -9: SIGKILLed)."""
        t0 = time.monotonic()
        p = subprocess.Popen([self.vmback] + args, cwd=self.w, env=self.env(extra),
                             stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill_after is not None:
            time.sleep(kill_after)
            p.kill()
        try:
            out, err = p.communicate(stdin, timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Problem("unexpected", "hung: vmback %s (killed after %d s)"
                          % (" ".join(args), CMD_TIMEOUT))
        key = " ".join(a for a in args[:3] if not a.startswith("-") and "/" not in a)
        n, secs = self.prof.get(key, (0, 0))
        self.prof[key] = (n + 1, secs + time.monotonic() - t0)
        if self.a.verbose:
            print("  $ vmback %s -> %d %s" % (" ".join(args), p.returncode,
                                             err.decode(errors="replace").strip()[:300]))
        return p.returncode, out, err.decode(errors="replace")

    def ok(self, args, stdin=None, what=None):
        """Run vmback ARGS; it must succeed."""
        rc, out, err = self.run(args, stdin=stdin)
        if rc != 0:
            raise Problem("unexpected", "%s failed (exit %d): vmback %s: %s"
                          % (what or "command", rc, " ".join(args), err.strip()))
        return out

    def traced(self, op, args, what):
        """A clean run of the operation; records its failpoint passes."""
        tr = os.path.join(self.w, "trace")
        if os.path.exists(tr):
            os.unlink(tr)
        t0 = time.monotonic()
        rc, out, err = self.run(args, extra={"VMBACK_FAIL_TRACE": tr})
        self.duration[op] = time.monotonic() - t0
        if rc != 0:
            raise Problem("unexpected", "%s failed (exit %d): vmback %s: %s"
                          % (what, rc, " ".join(args), err.strip()))
        self.passes[op] = count_trace(tr)
        return out

    # ---- the VM, the disk image and their expected bytes -----------------
    def setup(self):
        self.w = tempfile.mkdtemp(prefix="vmback-faults.", dir=self.a.workdir or None)
        self.repo = os.path.join(self.w, "repo")
        self.vmx = "ds/v/v.vmx"
        init = ["-q", "repo", "init", "--chunk-size", "256K", self.repo]
        if self.a.pack_size:
            init += ["--pack-size", self.a.pack_size]
        self.ok(init)
        m = self.a.mib             # size of the larger disks
        self.sizes = {"scsi0:0": m * MIB, "scsi0:1": m // 2 * MIB}
        self.ok(["-q", "vm", "create", self.vmx, "--disk", "%dM:vmfs" % m,
                 "--disk", "%dM" % (m // 2), "--ctk"])
        self.ok(["-q", "disk", "create", "--type", "monolithicSparse", "--size",
                 "%dM" % m, "--ctk", "d.vmdk"])
        self.vm = {k: bytearray(self.sizes[k]) for k in DISK_KEYS}
        self.disk = bytearray(m * MIB)
        self.points = {}          # id -> {"sha": {key: hex}, "sig": str|None}
        self.snap_seq = 0
        for _ in range(2):
            self.scribble_vm(6)
            self.scribble_disk(6)
            self.backup("vm", traced_op="backup-vm")
            self.backup("disk", traced_op="backup-disk")
        self.check_all("setup", full=True)

    def vm_file(self, key):
        """The file the .vmx names for a device now."""
        text = open(os.path.join(self.w, self.vmx)).read()
        m = re.search(r'^%s\.fileName = "(.*)"$' % re.escape(key), text, re.M)
        return os.path.join(os.path.dirname(self.vmx), m.group(1))

    def write(self, path, model, n):
        """n random writes into the disk path (and into model)."""
        for _ in range(n):
            ln = self.rng.choice((512, 4096, 65536, CHUNK, 3 * CHUNK // 2 + 777))
            off = self.rng.randrange(0, len(model) - ln) // 512 * 512
            data = self.rng.randbytes(ln)
            self.ok(["disk", "write", path, "--offset", str(off)], stdin=data)
            model[off:off + ln] = data

    def scribble_vm(self, n):
        for k in DISK_KEYS:
            self.write(self.vm_file(k), self.vm[k], max(1, n // 2))

    def scribble_disk(self, n):
        self.write("d.vmdk", self.disk, n)

    def vm_sha(self):
        return {k: sha(self.vm[k]) for k in DISK_KEYS}

    def vm_actual(self):
        return {k: sha(self.ok(["disk", "read", self.vm_file(k)])) for k in DISK_KEYS}

    def disk_actual(self):
        return sha(self.ok(["disk", "read", "d.vmdk"]))

    def backup(self, kind, traced_op=None, full=False):
        args = ["-q", "backup"] + (["--full"] if full else []) + \
               [self.vmx if kind == "vm" else "d.vmdk"]
        expect = self.vm_sha() if kind == "vm" else {"disk0": sha(self.disk)}
        if traced_op:
            self.traced(traced_op, args, "backup")
        else:
            self.ok(args, what="backup")
        self.adopt_new(kind, expect)

    def list_points(self):
        j = json.loads(self.ok(["--json", "list"]))
        return {p["id"]: p for p in j["points"]}

    def adopt_new(self, kind, expect, listed=None):
        """Points we do not know yet: made by the backup just run."""
        for pid, p in (listed or self.list_points()).items():
            if pid in self.points:
                continue
            if p["kind"] != kind:
                raise Problem("unexpected", "point %s (%s) appeared after a %s "
                              "backup" % (pid, p["kind"], kind))
            keys = [d["key"] for d in p["disks"]]
            e = dict(expect)
            if kind == "disk":
                e = {keys[0]: expect["disk0"]}
            if sorted(keys) != sorted(e):
                raise Problem("lost", "point %s has disks %s, expected %s"
                              % (pid, keys, sorted(e)))
            self.points[pid] = {"sha": e, "sig": None, "kind": kind}

    def point_sig(self, pid):
        """Hash of the point's objects (manifest, indexes, configuration)."""
        d = os.path.join(self.repo, "snapshots", pid)
        h = hashlib.sha256()
        for root, _, files in sorted(os.walk(d)):
            for f in sorted(files):
                if f.startswith(".tmp-"):
                    continue
                h.update(f.encode() + b"\0")
                h.update(open(os.path.join(root, f), "rb").read())
        return h.hexdigest()

    def restore_point(self, pid):
        """Restore every disk of the point; bytes must match its backup."""
        p = self.points[pid]
        for key, want in p["sha"].items():
            out = os.path.join(self.w, "restored.raw")
            if os.path.exists(out):
                os.unlink(out)
            args = ["-q", "restore", pid, out]
            if p["kind"] == "vm":
                args += ["--disk", key]
            rc, _, err = self.run(args)
            if rc != 0:
                raise Problem("lost", "point %s does not restore: %s" % (pid, err.strip()))
            got = sha(open(out, "rb").read())
            os.unlink(out)
            if got != want:
                raise Problem("lost", "point %s disk %s restores to other bytes" % (pid, key))
        p["sig"] = self.point_sig(pid)

    def check_all(self, when, full=False, may_remove=(), vm_ok=None, spot=True,
                  vm=True, disk=True, adopt=None, repo=True):
        """verify; the points listed are ours and intact (spot: restore one
        known point again); the VM (vm) and the disk image (disk) read as
        expected (vm_ok: more acceptable VM states)."""
        if repo or full:
            self.check_repo(when, full, may_remove, spot, adopt)
        self.check_vm(when, full, vm_ok, vm, disk)


    def check_repo(self, when, full, may_remove, spot, adopt):
        """verify, then the points (adopt: (kind, expected shas) of points
        a backup just made)."""
        rc, _, err = self.run(["-q", "verify"])
        if rc != 0:
            raise Problem("lost", "%s: verify fails: %s" % (when, err.strip()[-600:]))
        listed = self.list_points()
        if adopt:
            self.adopt_new(adopt[0], adopt[1], listed)
        for pid in list(self.points):
            if pid not in listed:
                if pid in may_remove:
                    del self.points[pid]
                    continue
                raise Problem("lost", "%s: point %s vanished" % (when, pid))
        for pid in listed:
            if pid not in self.points:
                raise Problem("unexpected", "%s: unknown point %s" % (when, pid))
        sample = [p for p in self.points if self.points[p]["sig"] is not None]
        spot = self.rng.choice(sample) if sample and spot else None
        for pid, p in self.points.items():
            if full or p["sig"] is None or pid == spot:
                self.restore_point(pid)
            elif self.point_sig(pid) != p["sig"]:
                raise Problem("lost", "%s: objects of point %s changed" % (when, pid))
    def check_vm(self, when, full, vm_ok, vm, disk):
        if vm or full:
            got = self.vm_actual()
            if got != self.vm_sha() and got not in (vm_ok or []):
                raise Problem("lost", "%s: the VM's disks read neither as before nor "
                              "as expected" % when)
        if (disk or full) and self.disk_actual() != sha(self.disk):
            raise Problem("lost", "%s: the disk image changed" % when)

    def snapshots(self):
        j = json.loads(self.ok(["--json", "vm", "snapshot", "list", self.vmx]))
        return [s["name"] for s in j["snapshots"]]

    def needs_consolidation(self):
        j = json.loads(self.ok(["--json", "vm", "info", self.vmx]))
        return j["consolidation-needed"]

    def vm_clean(self, when):
        """No snapshot and nothing to consolidate."""
        j = json.loads(self.ok(["--json", "vm", "info", self.vmx]))
        if j["snapshots"]:
            raise Problem("unexpected", "%s: snapshots left: %s"
                          % (when, [x.get("name") for x in j["snapshots"]]))
        if j["consolidation-needed"]:
            raise Problem("unexpected", "%s: the VM needs consolidation" % when)

    # ---- operations: prepare, the command, the run after the fault -------
    def prepare(self, op):
        """Set the stage; returns the command and what checks need."""
        c = {"may_remove": (), "vm_ok": []}
        if op == "backup-vm":
            self.scribble_vm(2)
            c["args"] = ["-q", "backup", self.vmx]
            c["kind"], c["expect"] = "vm", self.vm_sha()
        elif op == "backup-disk":
            self.scribble_disk(2)
            c["args"] = ["-q", "backup"] + (["--full"] if self.rng.random() < 0.2 else []) + ["d.vmdk"]
            c["kind"], c["expect"] = "disk", {"disk0": sha(self.disk)}
        elif op == "restore-vm":
            vmpts = [p for p in self.points if self.points[p]["kind"] == "vm"]
            target = self.rng.choice(vmpts)
            self.scribble_vm(2)
            c["args"] = ["-q", "restore", target, "--in-place", self.vmx]
            c["target"] = target
            c["vm_ok"] = [self.points[target]["sha"]]
        elif op == "snap-delete":
            names = []
            for _ in range(self.rng.choice((1, 1, 2))):
                self.snap_seq += 1
                names.append("s%d" % self.snap_seq)
                self.ok(["-q", "vm", "snapshot", "create", self.vmx, names[-1]])
                self.scribble_vm(2)
            c["name"] = self.rng.choice(names)
            c["args"] = ["-q", "vm", "snapshot", "delete", self.vmx, c["name"]]
        elif op == "snap-consolidate":
            self.snap_seq += 1
            name = "s%d" % self.snap_seq
            self.ok(["-q", "vm", "snapshot", "create", self.vmx, name])
            self.scribble_vm(2)
            cp = self.rng.choice(MERGE_CRASHPOINTS)
            rc, _, err = self.run(["-q", "vm", "snapshot", "delete", self.vmx, name],
                                  extra={"VMBACK_CRASH_AT": cp})
            if rc not in (0, KILLED):
                raise Problem("unexpected", "snapshot delete (crash at %s): exit %d: %s"
                              % (cp, rc, err.strip()))
            c["args"] = ["-q", "vm", "snapshot", "consolidate", self.vmx]
        elif op == "prune":
            self.scribble_disk(2)
            self.backup("disk")
            listed = self.list_points()
            by_src = {}
            for pid in sorted(listed, key=lambda i: (listed[i]["started"], i)):
                by_src.setdefault(listed[pid]["source"], []).append(pid)
            keep = {p for ids in by_src.values() for p in ids[-KEEP_LAST:]}
            c["keep"] = keep
            c["may_remove"] = set(listed) - keep
            c["args"] = ["-q", "prune", "--keep-last", str(KEEP_LAST)]
        elif op == "gc":
            self.scribble_disk(2)
            self.backup("disk")
            before = set(self.list_points())
            self.ok(["-q", "prune", "--keep-last", str(KEEP_LAST)])
            for pid in before - set(self.list_points()):
                del self.points[pid]
            c["args"] = ["-q", "gc"]
        return c

    @staticmethod
    def touches(op):
        """(VM, disk image): what an operation may change."""
        return (op in ("backup-vm", "restore-vm", "snap-delete", "snap-consolidate"),
                op == "backup-disk")

    def finish(self, op, c):
        """The run after the fault (traced); it must succeed and finish."""
        when = "%s, run again" % op
        vm, disk = self.touches(op)
        quick = dict(spot=False, vm=vm, disk=disk)
        if op in ("backup-vm", "backup-disk"):
            self.traced(op, c["args"], "backup")
            if op == "backup-vm":
                self.vm_clean(when)
            self.check_all(when, adopt=(c["kind"], c["expect"]), **quick)
        elif op == "restore-vm":
            self.traced(op, c["args"], "restore --in-place")
            want = self.points[c["target"]]["sha"]
            for k in DISK_KEYS:
                self.vm[k] = bytearray(self.ok(["disk", "read", self.vm_file(k)]))
            if self.vm_sha() != want:
                raise Problem("lost", "%s: the VM is not the point's bytes" % when)
            self.vm_clean(when)
        elif op == "snap-delete":
            if c["name"] in self.snapshots():
                self.traced(op, c["args"], "snapshot delete")
            elif self.needs_consolidation():
                self.ok(["-q", "vm", "snapshot", "consolidate", self.vmx],
                        what="consolidate after a failed delete")
            if c["name"] in self.snapshots():
                raise Problem("unexpected", "%s: snapshot %s still there" % (when, c["name"]))
            if self.snapshots():
                self.ok(["-q", "vm", "snapshot", "delete-all", self.vmx])
            self.vm_clean(when)
            self.check_all(when, repo=False, **quick)
        elif op == "snap-consolidate":
            self.traced(op, c["args"], "consolidate")
            if self.snapshots():      # the delete stopped before the .vmsd
                self.ok(["-q", "vm", "snapshot", "delete-all", self.vmx])
            self.vm_clean(when)
            self.check_all(when, repo=False, **quick)
        elif op == "prune":
            self.traced(op, c["args"], "prune")
            self.check_all(when, may_remove=c["may_remove"], **quick)
            if set(self.points) != c["keep"]:
                raise Problem("unexpected", "%s: kept %s, expected %s"
                              % (when, sorted(self.points), sorted(c["keep"])))
        elif op == "gc":
            self.traced(op, c["args"], "gc")
            self.check_all(when, **quick)

    # ---- one case ----------------------------------------------------------
    def pick_fault(self, op):
        """(env, label, errno or None, failpoint, pass) or a timed kill."""
        passes = {k: v for k, v in self.passes.get(op, {}).items() if v > 0}
        r = self.rng.random()
        if op in ("snap-delete", "snap-consolidate") and r < 0.12:
            cp = self.rng.choice(MERGE_CRASHPOINTS[1:] if op == "snap-consolidate"
                                 else MERGE_CRASHPOINTS)
            return {"VMBACK_CRASH_AT": cp}, "crash at %s" % cp, None, None, None, None
        if r < 0.20 or not passes:
            d = self.rng.uniform(0, max(0.05, self.duration.get(op, 0.5)))
            return {}, "SIGKILL after %.3f s" % d, None, None, None, d
        name = self.rng.choice(sorted(passes))
        k = self.rng.randint(1, passes[name])
        if r < 0.35:
            return ({"VMBACK_FAIL_AT": "%s:%d=KILL" % (name, k)},
                    "SIGKILL at %s:%d" % (name, k), None, name, k, None)
        code = "EIO" if name.endswith("-read") or self.rng.random() < 0.5 else "ENOSPC"
        onward = "+" if name.startswith("repo-") and code == "ENOSPC" \
            and self.rng.random() < 0.25 else ""
        spec = "%s:%d%s=%s" % (name, k, onward, code)
        return {"VMBACK_FAIL_AT": spec}, spec, code, name, k, None

    def case(self, n, op):
        st = self.stats[op]
        c = self.prepare(op)
        env, label, code, fp, k, delay = self.pick_fault(op)
        tr = os.path.join(self.w, "trace")
        if os.path.exists(tr):
            os.unlink(tr)
        env["VMBACK_FAIL_TRACE"] = tr
        rc, _, err = self.run(c["args"], extra=env, kill_after=delay)
        hits = count_trace(tr).get(fp, 0) if fp else None
        fired = (rc == KILLED) if code is None else hits >= k
        tag = "#%d %-16s %-34s" % (n, op, label)
        if not fired:
            st["missed"] += 1
            verdict = "not injected (exit %d)" % rc
        else:
            st["faults"] += 1
            st["kill" if code is None else code.lower()] += 1
            verdict = self.judge(rc, err, code, fp)
            if rc != 0:
                st["failed"] += 1
            else:
                st["absorbed"] += 1
        if self.a.verbose or (fired and rc != KILLED):   # failures and absorbed faults
            first = err.strip().splitlines()[-1] if err.strip() else ""
            print("%s %s%s" % (tag, verdict, (": " + first[:160]) if first and self.a.verbose else ""))
        when = "%s after %s" % (op, label)
        if op == "restore-vm" and rc == KILLED and self.left_halfway(when):
            c["vm_ok"].append(self.vm_actual())
            st["halfway"] += 1
        vm, disk = self.touches(op)
        adopt = (c["kind"], c["expect"]) if "kind" in c else None   # stored despite the fault
        self.check_all(when, may_remove=c["may_remove"], vm_ok=c["vm_ok"], vm=vm, disk=disk,
                       adopt=adopt)
        self.finish(op, c)
        return fired

    def left_halfway(self, when):
        """A restore --in-place killed half way: the VM reads as neither
        state, but the restore snapshot it left holds the old bytes (a
        revert gets them back; the next restore finishes the job)."""
        got = self.vm_actual()
        if got == self.vm_sha():
            return False
        j = json.loads(self.ok(["--json", "vm", "info", self.vmx]))
        names = [s.get("name", "") for s in j["snapshots"]]
        if not any(n.startswith("vmback-restore-") for n in names):
            return False
        frozen = {d["device"]: sha(self.ok(["disk", "read", d["chain"][1]]))
                  for d in j["disks"] if len(d["chain"]) > 1}
        if frozen != self.vm_sha():
            raise Problem("lost", "%s: the restore snapshot left behind does not hold "
                          "the VM's old bytes" % when)
        return True

    def judge(self, rc, err, code, fp):
        """The faulted run's exit and message."""
        if code is None:
            if rc not in (0, KILLED):
                raise Problem("unexpected", "exit %d instead of our SIGKILL: %s"
                              % (rc, err.strip()))
            return "killed" if rc == KILLED else "finished before the kill"
        if rc < 0 or rc >= 128:
            raise Problem("unexpected", "died (exit %d) instead of failing: %s"
                          % (rc, err.strip()[-800:]))
        if rc == 0:
            return "absorbed (exit 0)"
        lines = [l for l in err.splitlines() if l.strip()
                 and not l.startswith(("vmback: note: ", "vmback: warning: "))]
        text = os.strerror(getattr(__import__("errno"), code))
        if not lines or len(lines) > 3 or not all(l.startswith("vmback: ") for l in lines):
            raise Problem("unexpected", "not a short error (%d lines): %s"
                          % (len(lines), err.strip()[-800:]))
        named = fp.startswith("transport-") or any("'" in l for l in lines)
        if not named or not any(text in l for l in lines):
            raise Problem("unexpected", "the error names no file or not '%s': %s"
                          % (text, err.strip()))
        return "failed: %s" % lines[-1][:120]

    # ---- the campaign --------------------------------------------------------
    def reset(self):
        if self.a.keep:
            dst = os.path.join(self.a.keep, "case-%d" % len(self.problems))
            shutil.copytree(self.w, dst, symlinks=True)
            print("  (work directory kept in %s)" % dst)
        shutil.rmtree(self.w, ignore_errors=True)
        self.setup()

    def main(self):
        ops = self.a.ops.split(",") if self.a.ops else list(OPS)
        for o in ops:
            if o not in OPS:
                sys.exit("faults: unknown operation '%s' (%s)" % (o, ", ".join(OPS)))
        print("faults: %d faults, seed %d, operations %s" % (self.a.faults, self.a.seed, ",".join(ops)))
        t0 = time.monotonic()
        self.setup()
        for op in ops:                # a clean run of each: passes to choose from
            if op not in self.passes:
                c = self.prepare(op)
                self.finish(op, c)
        injected = attempts = 0
        while injected < self.a.faults and attempts < 3 * self.a.faults:
            op = ops[attempts % len(ops)]
            attempts += 1
            try:
                injected += self.case(attempts, op)
            except Problem as p:
                injected += 1
                self.stats[op][p.kind] += 1
                self.problems.append("#%d %s: %s: %s" % (attempts, op, p.kind, p))
                print("PROBLEM #%d %s: %s: %s" % (attempts, op, p.kind, p))
                self.reset()
        try:                          # every point, restored once more
            self.check_all("end", full=True)
        except Problem as p:
            self.problems.append("end: %s: %s" % (p.kind, p))
            self.stats[ops[0]][p.kind] += 1
            print("PROBLEM end: %s: %s" % (p.kind, p))
        tot = {k: sum(s[k] for s in self.stats.values()) for k in self.stats[OPS[0]]}
        for op in ops + ["total"]:
            s = tot if op == "total" else self.stats[op]
            print("%-17s faults %4d (eio %3d, enospc %3d, kill %3d)  failed %4d  absorbed %3d  "
                  "not-injected %3d  halfway %d  lost %d  unexpected %d"
                  % (op, s["faults"], s["eio"], s["enospc"], s["kill"], s["failed"],
                     s["absorbed"], s["missed"], s["halfway"], s["lost"], s["unexpected"]))
        print("faults: %d injected in %d cases, %d points checked at the end, %.0f s, seed %d"
              % (tot["faults"], attempts, len(self.points), time.monotonic() - t0, self.a.seed))
        if os.environ.get("FAULTS_PROFILE"):
            for k, (n, secs) in sorted(self.prof.items(), key=lambda kv: -kv[1][1]):
                print("  %-28s %5d runs %6.1f s" % (k, n, secs))
        shutil.rmtree(self.w, ignore_errors=True)
        if self.problems:
            print("faults: %d problem(s):" % len(self.problems))
            for p in self.problems:
                print("  " + p)
            return 1
        return 0


def count_trace(path):
    """{failpoint: passes} from a VMBACK_FAIL_TRACE file."""
    n = {}
    try:
        for line in open(path):
            n[line.strip()] = n.get(line.strip(), 0) + 1
    except FileNotFoundError:
        pass
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faults", type=int, default=None, help="faults to inject (200)")
    ap.add_argument("--quick", action="store_true", help="30 faults (CI)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ops", default="", help="comma-separated subset of " + ",".join(OPS))
    ap.add_argument("--pack-size", default="",
                    help="a packed repository with packs of this size (e.g. 1M)")
    ap.add_argument("--disk-mib", dest="mib", type=int, default=None,
                    help="size of the VM's first disk and of the disk image (8; --quick 4)")
    ap.add_argument("--vmback", default=os.environ.get("VMBACK", "build/vmback"))
    ap.add_argument("--keep", default="", help="copy the work directory of each problem here")
    ap.add_argument("--workdir", default=None,
                    help="where the VM and repository live (default /dev/shm when it exists)")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args()
    if a.workdir is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        a.workdir = "/dev/shm"    # no fsync costs; the faults are injected above the file system
    if a.faults is None:
        a.faults = 30 if a.quick else 200
    if a.mib is None:
        a.mib = 4 if a.quick else 8
    if a.seed is None:
        a.seed = int(os.environ.get("SEED", random.randrange(1 << 31)))
    return Campaign(a).main()


if __name__ == "__main__":
    sys.exit(main())
