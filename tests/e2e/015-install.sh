#!/bin/bash
# `meson install`: vmback goes to bindir alone; its driver modules and
# nbdkit plugins go to $libdir/vmback, where the installed binary finds them
# (relative to itself, so an install staged with DESTDIR works as well);
# the vmback(1) man page goes to $mandir/man1, renders without warnings,
# has whatis's NAME line and a section for every command.
. "$(dirname "$0")/functions.sh"
requires meson

cd "$T"
D=$T/dest
meson install -C "$VMBACK_BUILD" --no-rebuild --destdir "$D" > "$T/install.log" 2>&1 ||
  { cat "$T/install.log"; false; }
read -r prefix bindir libdir mandir < <(meson introspect --buildoptions "$VMBACK_BUILD" |
  python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["bindir"], o["libdir"], o["mandir"])')
BIN=$D$prefix/$bindir/vmback
LIB=$D$prefix/$libdir/vmback
[ "$(ls "$(dirname "$BIN")")" = vmback ]           # nothing else in bindir
[ -f "$LIB/vmback-s3.so" ]; [ -f "$LIB/vmback-nbd.so" ]
unset VMBACK_MODULE_DIR VMBACK_NBDKIT_PLUGIN

# the S3 module loads from there: an unreachable endpoint fails at the
# connection, not at the module
expect_fail "connect|refused" env AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s \
  "$BIN" --s3-endpoint http://127.0.0.1:9 repo info --repo s3://vmback-none/p
# ... and without it the error names where it was looked for
mv "$LIB/vmback-s3.so" "$T/"
expect_fail "$prefix/$libdir/vmback/vmback-s3.so" env AWS_ACCESS_KEY_ID=k \
  AWS_SECRET_ACCESS_KEY=s "$BIN" --s3-endpoint http://127.0.0.1:9 repo info --repo s3://vmback-none/p
mv "$T/vmback-s3.so" "$LIB/"

# the nbd module and the transport's nbdkit plugin: a backup via nbd
if [ -f "$VMBACK_BUILD/nbdkit-vmback-vdisk.so" ] && command -v nbdkit > /dev/null; then
  [ -f "$LIB/nbdkit-vmback-vdisk.so" ]; [ -f "$LIB/nbdkit-vmback.so" ]
  "$BIN" -q vm create "$T/vm/v.vmx" --disk 4M:vmfs
  mkpattern p 300000 15
  "$BIN" disk write "$T/vm/v.vmdk" --offset 8192 < p
  "$BIN" -q repo init "$T/repo"
  "$BIN" backup --repo "$T/repo" --transport nbd "$T/vm/v.vmx" > b.out 2> b.err
  grep -q "transport nbd\|via nbd" b.out b.err
  "$BIN" -q restore --repo "$T/repo" v@latest --to "$T/r"
  cmp <("$BIN" disk read "$T/vm/v.vmdk") <("$BIN" disk read "$T/r/v.vmdk")
else
  echo "# nbd part skipped: no nbdkit plugin was built, or nbdkit is missing"
fi

# the man page
if [ -f "$VMBACK_BUILD/vmback.1" ] && command -v man > /dev/null; then
  MAN=$D$prefix/$mandir/man1/vmback.1
  [ -f "$MAN" ]
  MANWIDTH=100 man --warnings -l "$MAN" > man.txt 2> man.err
  [ ! -s man.err ] || { cat man.err; false; }
  head -n 1 man.txt | grep -q "^vmback(1) "
  for sec in NAME SYNOPSIS "GLOBAL OPTIONS" "EXIT STATUS"; do grep -q "^$sec\$" man.txt; done
  for cmd in disk cbt repo backup list restore verify prune gc serve vm; do
    grep -q "vmback $cmd " man.txt
  done
  if command -v lexgrog > /dev/null; then
    lexgrog "$MAN" | grep -q '"vmback - image-level backup'
  fi
else
  echo "# man page part skipped: lowdown (which makes it) or man is missing"
fi
echo "015-install OK"
