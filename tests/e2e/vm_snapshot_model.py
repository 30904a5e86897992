#!/usr/bin/env python3
"""Model-checked snapshot operations on a VM directory.

Keeps, for every disk, the bytes the VM should read now and the bytes
every existing snapshot should read, and after each step compares them
with what vmback reads (current leaf and each snapshot's layer) and with
what qemu-img reads (current leaf, via qemu-img compare).  The vmx keeps
an unknown key and a comment byte for byte.

usage: vm_snapshot_model.py VMBACK WORKDIR [--seed N] [--steps script|random:N]
"""
import json
import os
import random
import re
import subprocess
import sys

SIZE = 8 << 20


class Harness:
    def __init__(self, vmback, work, seed):
        self.vmback = vmback
        self.work = work
        self.rng = random.Random(seed)
        self.vmx = os.path.join(work, "vm", "vm.vmx")
        self.devices = ["scsi0:0", "scsi0:1"]
        self.cur = {d: bytearray(SIZE) for d in self.devices}
        self.snaps = {}          # uid -> {"name", "data": {dev: bytes}}
        self.current = 0         # current snapshot uid
        self.steps = 0
        self.checking = True     # compare after every step
        self.qemu = True         # also compare through qemu-img
        self.env = dict(os.environ)

    # --- helpers -----------------------------------------------------------
    def run(self, *args, stdin=None, check=True):
        p = subprocess.run([self.vmback, *args], input=stdin, capture_output=True, env=self.env)
        if check and p.returncode != 0:
            sys.exit("FAIL: vmback %s: %s" % (" ".join(args), p.stderr.decode().strip()))
        return p

    def vmx_text(self):
        with open(self.vmx) as f:
            return f.read()

    def leaf(self, dev):
        m = re.search(r'^%s\.fileName = "([^"]*)"' % re.escape(dev), self.vmx_text(), re.M)
        return os.path.join(os.path.dirname(self.vmx), m.group(1))

    def snapshot_files(self):
        """uid -> {dev: path} from the .vmsd."""
        path = self.vmx[:-4] + ".vmsd"
        if not os.path.exists(path):
            return {}
        kv = {}
        for line in open(path):
            m = re.match(r'^(\S+) = "(.*)"$', line.strip())
            if m:
                kv[m.group(1)] = m.group(2)
        out = {}
        n = int(kv.get("snapshot.numSnapshots", "0"))
        for i in range(n):
            uid = int(kv["snapshot%d.uid" % i])
            disks = {}
            for k in range(int(kv["snapshot%d.numDisks" % i])):
                disks[kv["snapshot%d.disk%d.node" % (i, k)]] = os.path.join(
                    os.path.dirname(self.vmx), kv["snapshot%d.disk%d.fileName" % (i, k)])
            out[uid] = disks
        return out

    def read(self, path):
        return self.run("disk", "read", path, "--offset", "0", "--length", str(SIZE)).stdout

    # --- operations ---------------------------------------------------------
    def create_vm(self):
        self.run("vm", "create", self.vmx, "--disk", "8M:vmfs", "--disk", "8M:monolithicSparse",
                 "--ctk")
        with open(self.vmx, "a") as f:
            f.write("# kept by vmback\nvmback.test.unknownKey = \"a|22b\"\n")
        self.vmx_fixed = [l for l in self.vmx_text().splitlines() if ".fileName" not in l]

    def write(self, n=6):
        for dev in self.devices:
            leaf = self.leaf(dev)
            for _ in range(n):
                off = self.rng.randrange(0, SIZE - 1)
                ln = min(self.rng.choice([512, 4096, 65536, 200000, 1 << 20]), SIZE - off)
                data = bytes(self.rng.getrandbits(8) for _ in range(16)) * (ln // 16 + 1)
                data = data[:ln]
                if self.rng.random() < 0.2:
                    data = bytes(ln)           # zeros over earlier data
                self.run("disk", "write", leaf, "--offset", str(off), stdin=data)
                self.cur[dev][off:off + ln] = data
        self.step("write")

    def create(self, name):
        p = self.run("--json", "vm", "snapshot", "create", self.vmx, name)
        uid = json.loads(p.stdout)["uid"]
        self.snaps[uid] = {"name": name, "data": {d: bytes(self.cur[d]) for d in self.devices},
                           "parent": self.current}
        self.current = uid
        self.step("create %s" % name)
        return uid

    def delete(self, uid):
        self.run("vm", "snapshot", "delete", self.vmx, self.snaps[uid]["name"])
        parent = self.snaps[uid]["parent"]
        for s in self.snaps.values():
            if s["parent"] == uid:
                s["parent"] = parent
        if self.current == uid:
            self.current = parent
        del self.snaps[uid]
        self.step("delete %d" % uid)

    def delete_all(self):
        self.run("vm", "snapshot", "delete-all", self.vmx)
        self.snaps = {}
        self.current = 0
        self.step("delete-all")

    def revert(self, uid):
        self.run("vm", "snapshot", "revert", self.vmx, self.snaps[uid]["name"])
        for d in self.devices:
            self.cur[d] = bytearray(self.snaps[uid]["data"][d])
        self.current = uid
        self.step("revert %d" % uid)

    # --- checks --------------------------------------------------------------
    def step(self, what, may_lack=()):
        """Compare everything with the model.  Snapshots in may_lack may be
        missing from the .vmsd (an interrupted delete)."""
        self.steps += 1
        if not self.checking:
            return
        files = self.snapshot_files()
        if not set(files) <= set(self.snaps) or set(self.snaps) - set(files) - set(may_lack):
            sys.exit("FAIL after %s: snapshots %s, expected %s" % (what, sorted(files), sorted(self.snaps)))
        for dev in self.devices:
            leaf = self.leaf(dev)
            got = self.read(leaf)
            if got != bytes(self.cur[dev]):
                sys.exit("FAIL after %s: %s (%s) differs from the model" % (what, dev, leaf))
            for uid, s in self.snaps.items():
                if uid in files and self.read(files[uid][dev]) != s["data"][dev]:
                    sys.exit("FAIL after %s: snapshot %d of %s differs" % (what, uid, dev))
            if not self.qemu:
                continue
            raw = os.path.join(self.work, "model.raw")
            with open(raw, "wb") as f:
                f.write(self.cur[dev])
            q = subprocess.run(["qemu-img", "compare", "-q", "-f", "vmdk", "-F", "raw", leaf, raw],
                               capture_output=True)
            if q.returncode != 0:
                sys.exit("FAIL after %s: qemu-img reads %s differently: %s" % (what, leaf, q.stderr.decode()))
            q = subprocess.run(["qemu-img", "info", "--backing-chain", leaf], capture_output=True)
            if q.returncode != 0:
                sys.exit("FAIL after %s: qemu-img info --backing-chain %s: %s" % (what, leaf, q.stderr.decode()))
        kept = [l for l in self.vmx_text().splitlines() if ".fileName" not in l]
        if kept != self.vmx_fixed:
            sys.exit("FAIL after %s: .vmx lines other than fileName changed" % what)
        info = json.loads(self.run("--json", "vm", "info", self.vmx).stdout)
        if info.get("consolidation-needed"):
            sys.exit("FAIL after %s: leftover files %s" % (what, info.get("unreferenced-files")))
        if info.get("current-snapshot") != self.current:
            sys.exit("FAIL after %s: current snapshot %s, expected %d" % (what, info.get("current-snapshot"), self.current))
        print("ok %d - %s" % (self.steps, what), flush=True)

    # --- scenarios -------------------------------------------------------------
    def script(self):
        """The three delete cases (docs/snapshots.md), delete-all, revert and a
        branch off a reverted snapshot."""
        self.create_vm()
        self.write()
        s1 = self.create("s1")
        self.write()
        s2 = self.create("s2")
        self.write()
        s3 = self.create("s3")
        self.write()
        self.delete(s2)             # on the current path: merged into its parent's layer
        self.revert(s1)
        self.write()                # a branch off the reverted snapshot
        s4 = self.create("s4")
        self.write()
        self.delete(s3)             # off the current path: files removed, no merge
        self.delete(s1)             # on the base: merged into the base
        self.write()
        self.create("s5")
        self.write()
        self.create("s6")
        self.write()
        self.revert(s4)
        self.write()
        self.delete_all()           # every layer straight into the base
        self.write()
        self.create("s7")
        self.write()

    def random(self, n):
        self.create_vm()
        names = 0
        for _ in range(n):
            op = self.rng.random()
            if op < 0.35:
                self.write(3)
            elif op < 0.6 and len(self.snaps) < 32:
                names += 1
                self.create("r%d" % names)
            elif op < 0.8 and self.snaps:
                self.delete(self.rng.choice(sorted(self.snaps)))
            elif op < 0.95 and self.snaps:
                self.revert(self.rng.choice(sorted(self.snaps)))
            elif self.snaps:
                self.delete_all()


def main():
    vmback, work = sys.argv[1], sys.argv[2]
    seed, steps = 1, "script"
    args = sys.argv[3:]
    while args:
        a = args.pop(0)
        if a == "--seed":
            seed = int(args.pop(0))
        elif a == "--steps":
            steps = args.pop(0)
    h = Harness(vmback, work, seed)
    if steps == "script":
        h.script()
    else:
        h.random(int(steps.split(":")[1]))
    print("%d steps checked" % h.steps)


if __name__ == "__main__":
    main()
