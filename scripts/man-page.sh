#!/bin/sh
# Make the vmback(1) man page from docs/CLI.md with lowdown(1): the
# document's "# vmback(1)" title line is dropped and its "##" sections
# become the page's sections (.SH), "###" its subsections (.SS).  The
# headings are then put on their .SH/.SS lines and the NAME line gets the
# "\-" that whatis(1) and apropos(1) look for.
# usage: scripts/man-page.sh LOWDOWN docs/CLI.md OUT.1 VERSION
set -eu
LOWDOWN=$1 IN=$2 OUT=$3 VERSION=$4
sed -e '1{/^# /d;}' -e 's/^## /# /' -e 's/^### /## /' "$IN" |
  "$LOWDOWN" -s -Tman -M title=vmback -M section=1 -M "source=vmback $VERSION" \
    -M "volume=vmback manual" -o - - |
  sed -e '/^\.S[HS]$/{N;s/\n/ /;}' -e 's/^vmback — /vmback \\- /' > "$OUT"
